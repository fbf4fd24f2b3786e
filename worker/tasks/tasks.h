/* tasks: every task module's registration function, and one call that
 * registers them all. Adding a module: write worker/tasks/<module>.c with a
 * tasks_<module>_register(), declare it here, call it from tasks.c, and list
 * the file in worker/CMakeLists.txt. */
#ifndef WORKER_TASKS_H
#define WORKER_TASKS_H

#include "registry.h"

/* builtin.*: tasks for tests and benchmarks (noop, add, sleep, fail, flaky,
 * progress, crash, echo). Returns 0 or the first registration error. */
int tasks_builtin_register(worker_registry_t *registry);

/* app.workers.tasks.file_processing.*: the Drive2 pipeline
 * (drive2_tasks.c; docs/DRIVE2.md, "Tasks"). */
int tasks_drive2_register(worker_registry_t *registry);

/* app.workers.tasks.thumbnails.generate_thumbnail (drive2_thumbnail_task.c;
 * docs/DRIVE2.md, "Thumbnails"). */
int tasks_thumbnails_register(worker_registry_t *registry);

/* app.workers.tasks.notifications.*: LINE notices or the outbox
 * (drive2_notify_tasks.c; docs/DRIVE2.md, "LINE notifications"). */
int tasks_notifications_register(worker_registry_t *registry);

/* Registers every module above. Returns 0 or the first error. */
int tasks_register_all(worker_registry_t *registry);

#endif
