/* tasks: the list of task modules compiled into zmqworker. */
#include "tasks.h"

int tasks_register_all(worker_registry_t *registry) {
    int rc = tasks_builtin_register(registry);
    return rc;
}
