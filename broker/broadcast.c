/* broadcast: pending broadcasts in an array (they are few and short-lived),
 * each with its targets in an array indexed by req - first_req.
 * Invariant: a broadcast's `waiting` counts the targets neither answered nor
 * gone; it is finished when waiting is 0. */
#include "broadcast.h"
#include "zt_codec.h"
#include "zt_error.h"

#include <stdlib.h>
#include <string.h>

#define IDENTITY_MAX 255

typedef struct {
    unsigned char identity[IDENTITY_MAX];
    size_t identity_size;
    char *name;
    bool answered;
    bool gone;
    char *reply; /* packed value for the answer map, when answered */
    size_t reply_size;
} target_t;

struct broker_broadcast {
    unsigned char client[IDENTITY_MAX];
    size_t client_size;
    uint64_t client_req;
    int64_t deadline; /* caller's clock unit */
    uint64_t first_req;
    target_t *targets;
    size_t ntargets;
    size_t capacity;
    size_t waiting;
    size_t answered;
};

struct broker_broadcasts {
    broker_broadcast_t **pending;
    size_t size;
    uint64_t next_req; /* never 0, so a zeroed req never matches */
};

broker_broadcasts_t *broker_broadcasts_new(void) {
    broker_broadcasts_t *self = zt_calloc(1, sizeof *self);
    self->pending = zt_calloc(BROKER_BROADCASTS_MAX, sizeof *self->pending);
    self->next_req = 1;
    return self;
}

void broker_broadcast_destroy(broker_broadcast_t **bc_p) {
    if (!bc_p || !*bc_p)
        return;
    broker_broadcast_t *bc = *bc_p;
    for (size_t i = 0; i < bc->ntargets; i++) {
        free(bc->targets[i].name);
        free(bc->targets[i].reply);
    }
    free(bc->targets);
    free(bc);
    *bc_p = NULL;
}

void broker_broadcasts_destroy(broker_broadcasts_t **self_p) {
    if (!self_p || !*self_p)
        return;
    broker_broadcasts_t *self = *self_p;
    for (size_t i = 0; i < self->size; i++)
        broker_broadcast_destroy(&self->pending[i]);
    free(self->pending);
    free(self);
    *self_p = NULL;
}

size_t broker_broadcasts_size(const broker_broadcasts_t *self) {
    return self->size;
}

broker_broadcast_t *broker_broadcasts_start(broker_broadcasts_t *self, const void *client,
                                            size_t client_size, uint64_t client_req,
                                            int64_t deadline) {
    if (self->size >= BROKER_BROADCASTS_MAX || client_size == 0 || client_size > IDENTITY_MAX)
        return NULL;
    broker_broadcast_t *bc = zt_calloc(1, sizeof *bc);
    memcpy(bc->client, client, client_size);
    bc->client_size = client_size;
    bc->client_req = client_req;
    bc->deadline = deadline;
    bc->first_req = self->next_req;
    self->pending[self->size++] = bc;
    return bc;
}

uint64_t broker_broadcast_add_target(broker_broadcasts_t *self, broker_broadcast_t *bc,
                                     const void *worker, size_t worker_size, const char *name) {
    /* consecutive reqs: only the broadcast started last may grow */
    ZT_ASSERT(self->size > 0 && self->pending[self->size - 1] == bc);
    ZT_ASSERT(bc->first_req + bc->ntargets == self->next_req);
    ZT_ASSERT(worker_size > 0 && worker_size <= IDENTITY_MAX);
    if (bc->ntargets == bc->capacity) {
        bc->capacity = bc->capacity ? bc->capacity * 2 : 8;
        bc->targets = zt_realloc(bc->targets, bc->capacity * sizeof *bc->targets);
    }
    target_t *t = &bc->targets[bc->ntargets++];
    memset(t, 0, sizeof *t);
    memcpy(t->identity, worker, worker_size);
    t->identity_size = worker_size;
    t->name = zt_strdup(name);
    bc->waiting++;
    return self->next_req++;
}

/* Packs obj into a new buffer; returns its bytes (caller frees). */
static char *pack_copy(const msgpack_object *obj, size_t *size) {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *obj);
    *size = buf.size;
    return msgpack_sbuffer_release(&buf);
}

/* {error: text} packed into a new buffer. */
static char *pack_error(const char *text, size_t len, size_t *size) {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    zt_pack_cstr(&pk, "error");
    zt_pack_strn(&pk, text, len);
    *size = buf.size;
    return msgpack_sbuffer_release(&buf);
}

int broker_broadcasts_reply(broker_broadcasts_t *self, const void *worker, size_t worker_size,
                            uint64_t req, const msgpack_object *body) {
    for (size_t i = 0; i < self->size; i++) {
        broker_broadcast_t *bc = self->pending[i];
        if (req < bc->first_req || req - bc->first_req >= bc->ntargets)
            continue;
        target_t *t = &bc->targets[req - bc->first_req];
        if (t->answered || t->gone || t->identity_size != worker_size ||
            memcmp(t->identity, worker, worker_size) != 0)
            return ZT_ERR_NOT_FOUND;
        bool ok = false;
        if (zt_mp_get_bool(body, "ok", &ok) != 0) {
            static const char msg[] = "malformed reply";
            t->reply = pack_error(msg, sizeof msg - 1, &t->reply_size);
        } else if (ok) {
            const msgpack_object *result = zt_mp_get(body, "result");
            msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
            t->reply = pack_copy(result ? result : &nil, &t->reply_size);
        } else {
            const msgpack_object *err = zt_mp_get(body, "error");
            if (err && err->type == MSGPACK_OBJECT_STR) {
                t->reply = pack_error(err->via.str.ptr, err->via.str.size, &t->reply_size);
            } else {
                static const char msg[] = "failed";
                t->reply = pack_error(msg, sizeof msg - 1, &t->reply_size);
            }
        }
        if (t->reply_size > BROKER_BROADCAST_REPLY_MAX) {
            static const char msg[] = "reply too large";
            free(t->reply);
            t->reply = pack_error(msg, sizeof msg - 1, &t->reply_size);
        }
        t->answered = true;
        bc->answered++;
        bc->waiting--;
        return 0;
    }
    return ZT_ERR_NOT_FOUND;
}

size_t broker_broadcasts_worker_gone(broker_broadcasts_t *self, const void *worker,
                                     size_t worker_size) {
    size_t n = 0;
    for (size_t i = 0; i < self->size; i++) {
        broker_broadcast_t *bc = self->pending[i];
        for (size_t j = 0; j < bc->ntargets; j++) {
            target_t *t = &bc->targets[j];
            if (t->answered || t->gone || t->identity_size != worker_size ||
                memcmp(t->identity, worker, worker_size) != 0)
                continue;
            t->gone = true;
            bc->waiting--;
            n++;
        }
    }
    return n;
}

broker_broadcast_t *broker_broadcasts_pop_finished(broker_broadcasts_t *self, int64_t now) {
    for (size_t i = 0; i < self->size; i++) {
        broker_broadcast_t *bc = self->pending[i];
        if (bc->waiting > 0 && bc->deadline > now)
            continue;
        /* keep start order: later reqs stay after earlier ones */
        memmove(&self->pending[i], &self->pending[i + 1],
                (self->size - i - 1) * sizeof *self->pending);
        self->size--;
        return bc;
    }
    return NULL;
}

int64_t broker_broadcasts_wait(const broker_broadcasts_t *self, int64_t now) {
    int64_t wait = -1;
    for (size_t i = 0; i < self->size; i++) {
        const broker_broadcast_t *bc = self->pending[i];
        int64_t w = (bc->waiting == 0 || bc->deadline <= now) ? 0 : bc->deadline - now;
        if (wait < 0 || w < wait)
            wait = w;
    }
    return wait;
}

const void *broker_broadcast_client(const broker_broadcast_t *bc, size_t *size) {
    *size = bc->client_size;
    return bc->client;
}

uint64_t broker_broadcast_client_req(const broker_broadcast_t *bc) {
    return bc->client_req;
}

size_t broker_broadcast_targets(const broker_broadcast_t *bc) {
    return bc->ntargets;
}

size_t broker_broadcast_answered(const broker_broadcast_t *bc) {
    return bc->answered;
}

/* True if an earlier answered target has the same name as target i. */
static bool name_answered_before(const broker_broadcast_t *bc, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (bc->targets[j].answered && strcmp(bc->targets[j].name, bc->targets[i].name) == 0)
            return true;
    return false;
}

void broker_broadcast_pack_result(const broker_broadcast_t *bc, msgpack_packer *pk) {
    size_t n = 0;
    for (size_t i = 0; i < bc->ntargets; i++)
        n += bc->targets[i].answered && !name_answered_before(bc, i);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < bc->ntargets; i++) {
        const target_t *t = &bc->targets[i];
        if (!t->answered || name_answered_before(bc, i))
            continue;
        zt_pack_cstr(pk, t->name);
        /* the reply is already MessagePack: append its bytes as they are */
        pk->callback(pk->data, t->reply, t->reply_size);
    }
}
