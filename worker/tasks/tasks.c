/* tasks: the list of task modules compiled into zmqworker. */
#include "tasks.h"

int tasks_register_all(worker_registry_t *registry) {
    int rc = tasks_builtin_register(registry);
    if (rc == 0)
        rc = tasks_drive2_register(registry);
    if (rc == 0)
        rc = tasks_thumbnails_register(registry);
    if (rc == 0)
        rc = tasks_notifications_register(registry);
    return rc;
}
