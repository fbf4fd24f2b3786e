/* zt-thumb-bench: thumbnails per second and memory of Drive2's thumbnail
 * code (worker/drive2/thumbnail.c) against ImageMagick's
 * `convert -thumbnail 300x300`, on the same files in the same run.
 *
 *   zt-thumb-bench [--count N] [--concurrent N] [--jpeg FILE] [--pdf FILE]
 *                  [--convert PATH] [--json]
 *
 * Without --jpeg/--pdf it makes a 4000x3000 photo-like JPEG (gradient plus
 * noise, quality 85) and a one-page A4 PDF (ps2pdf) in a temporary folder.
 * Contenders, each in processes of its own:
 *   zt in-process  one child makes N thumbnails in a loop: the worker's case
 *                  (a pool child keeps libvips started between tasks);
 *   zt per-process N children, each starting libvips for one thumbnail. They
 *                  are forked (no exec) from this program, which links the
 *                  same libraries and has not started libvips: the shape of a
 *                  zmqworker pool child;
 *   convert        N `convert FILE -thumbnail 300x300 out.jpg` processes; for
 *                  the PDF `convert 'FILE[0]' ...`, which runs ghostscript as
 *                  a delegate while convert waits. Debian's ImageMagick policy
 *                  refuses PDF; as root each convert then runs in a private
 *                  mount namespace with a copy of the system policy.xml minus
 *                  its PDF line bind-mounted over it (nothing else changed).
 *                  Without root the PDF row runs what convert delegates to,
 *                  gs at 72 dpi then convert on the PNG, one after the other,
 *                  and says so.
 *
 * Speed is timed in one pass without any sampling. Memory is a second pass
 * of the same work, sampled from /proc every millisecond, summed over every
 * live process of the contender's process tree (convert plus its gs), the
 * peak of each sum kept:
 *   RSS  resident pages, shared library pages counted in full;
 *   PSS  proportional: each page divided by the number of processes mapping it;
 *   USS  private (Private_Clean + Private_Dirty of smaps_rollup): pages no
 *        other process maps, what ending the process would free. Library
 *        pages count here only while no other process maps them;
 *   dirty  Private_Dirty alone: heap, stacks, written data; memory that can
 *        never be shared, whatever else runs on the machine.
 * --concurrent N (default 4): N PDF (and N JPEG) thumbnails at the same time,
 * zt as N children of this process, ImageMagick as N convert pipelines; the
 * memory each adds is (peak with N - peak with 1) / (N - 1). Last, the PDF
 * case again with libvips started (drive2_thumbnail_init: no thread yet)
 * in this process before it forks: what zmqworker would save by doing so.
 * Run it on a quiet machine: other load skews every figure. */
#define _GNU_SOURCE /* unshare, CLONE_NEWNS */
#include "thumbnail.h"
#include "zt_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

#define MAX_TREE 64       /* processes followed in one sampled tree */
#define MAX_PARALLEL 16   /* --concurrent limit */
#define WATCH_LIMIT_S 300 /* a contender running longer is hung: killed */
#define SYSTEM_POLICY "/etc/ImageMagick-6/policy.xml"

/* Memory of a process set, KiB (one sample, or the peak of each sum). */
typedef struct {
    long rss, pss, uss, dirty;
} mem_t;

typedef struct {
    double seconds; /* wall time of all N */
    int ok;         /* thumbnails made */
    mem_t peak;     /* memory pass: peak of each sum over the process tree */
} run_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the sampler ------------------------------------------------------------ */

/* Adds pid's smaps_rollup to *sum; a process that is gone adds nothing. */
static void add_process(pid_t pid, mem_t *sum) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    long v;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Rss: %ld", &v) == 1)
            sum->rss += v;
        else if (sscanf(line, "Pss: %ld", &v) == 1)
            sum->pss += v;
        else if (sscanf(line, "Private_Clean: %ld", &v) == 1)
            sum->uss += v;
        else if (sscanf(line, "Private_Dirty: %ld", &v) == 1) {
            sum->uss += v;
            sum->dirty += v;
        }
    }
    fclose(f);
}

/* Appends pid's children (of all its threads) to list[*n..max). */
static void add_children(pid_t pid, pid_t *list, int *n, int max) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && *n < max) {
        if (e->d_name[0] == '.')
            continue;
        char cpath[300];
        snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
        FILE *f = fopen(cpath, "r");
        if (!f)
            continue;
        int c;
        while (*n < max && fscanf(f, "%d", &c) == 1)
            list[(*n)++] = (pid_t)c;
        fclose(f);
    }
    closedir(d);
}

/* Fills list (MAX_TREE) with roots[0..nroots) and all their descendants;
 * returns how many. */
static int collect_trees(const pid_t *roots, int nroots, pid_t *list) {
    int n = 0;
    for (int i = 0; i < nroots && n < MAX_TREE; i++)
        list[n++] = roots[i];
    for (int i = 0; i < n; i++)
        add_children(list[i], list, &n, MAX_TREE);
    return n;
}

/* One sample: the sums over roots[0..nroots) and all their descendants. */
static mem_t sample_trees(const pid_t *roots, int nroots) {
    pid_t list[MAX_TREE];
    int n = collect_trees(roots, nroots, list);
    mem_t sum = {0, 0, 0, 0};
    for (int i = 0; i < n; i++)
        add_process(list[i], &sum);
    return sum;
}

static void mem_max(mem_t *peak, mem_t m) {
    if (m.rss > peak->rss)
        peak->rss = m.rss;
    if (m.pss > peak->pss)
        peak->pss = m.pss;
    if (m.uss > peak->uss)
        peak->uss = m.uss;
    if (m.dirty > peak->dirty)
        peak->dirty = m.dirty;
}

/* Waits for every pid in pids[0..n); status[i] gets its exit code (-1 when
 * killed). With peak, samples the trees every millisecond meanwhile and
 * raises *peak to each sum's highest value. Waits on pidfds, so an exit is
 * seen at once (the speed pass times these waits); contenders still running
 * after WATCH_LIMIT_S (a hung convert or gs) are killed, with a line saying so. */
static void watch(pid_t *pids, int n, int *status, mem_t *peak) {
    struct pollfd fds[MAX_PARALLEL];
    int slot_of[MAX_PARALLEL];
    double deadline = now_s() + WATCH_LIMIT_S;
    for (int i = 0; i < n; i++)
        status[i] = pids[i] > 0 ? -2 : -1;
    for (;;) {
        int nl = 0;
        pid_t live[MAX_PARALLEL];
        for (int i = 0; i < n; i++) {
            if (status[i] != -2)
                continue;
            int st = 0;
            pid_t r = waitpid(pids[i], &st, WNOHANG);
            if (r == pids[i] || (r < 0 && errno != EINTR)) {
                status[i] = r == pids[i] && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
                continue;
            }
            live[nl] = pids[i];
            slot_of[nl++] = i;
        }
        if (nl == 0)
            return;
        if (peak)
            mem_max(peak, sample_trees(live, nl));
        double left_s = deadline - now_s();
        if (left_s <= 0) {
            /* descendants too: convert's gs would outlive convert */
            pid_t tree[MAX_TREE];
            int nt = collect_trees(live, nl, tree);
            for (int k = 0; k < nt; k++)
                kill(tree[k], SIGKILL);
            for (int k = 0; k < nl; k++) {
                fprintf(stderr,
                        "zt-thumb-bench: pid %d still running after %d s: killed with its "
                        "descendants\n",
                        (int)live[k], WATCH_LIMIT_S);
                waitpid(live[k], NULL, 0);
                status[slot_of[k]] = -1;
            }
            return;
        }
        int nfds = 0;
        for (int k = 0; k < nl; k++) {
            int fd = pidfd_open(live[k], 0);
            if (fd >= 0)
                fds[nfds++] = (struct pollfd){fd, POLLIN, 0};
        }
        int timeout_ms = peak ? 1 : (int)(left_s * 1000) + 1;
        if (nfds > 0)
            poll(fds, (nfds_t)nfds, timeout_ms);
        else /* no pidfds (an old kernel): look again shortly */
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        for (int k = 0; k < nfds; k++)
            close(fds[k].fd);
    }
}

/* --- the contenders --------------------------------------------------------- */

/* Starts argv (PATH lookup, no shell, output to /dev/null). With policy,
 * the child first bind-mounts policy over ImageMagick's system policy.xml
 * in a mount namespace of its own (root only): the change is seen by that
 * convert and its delegates, nobody else. With start (a pipe), it waits for
 * the pipe's write end to close before it execs. Returns the pid or -1. */
static pid_t spawn(char *const argv[], const char *policy, const int *start) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2); /* convert's policy refusal is expected and handled */
        }
        if (policy &&
            (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
             mount(policy, SYSTEM_POLICY, NULL, MS_BIND, NULL) != 0))
            _exit(126);
        if (start) {
            char c;
            close(start[1]);
            while (read(start[0], &c, 1) < 0 && errno == EINTR)
                ;
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs argv to the end; returns its exit status (-1 if it could not run). */
static int run_cmd(char *const argv[], const char *policy, mem_t *peak) {
    pid_t pid = spawn(argv, policy, NULL);
    int st = -1;
    if (pid > 0)
        watch(&pid, 1, &st, peak);
    return st;
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

/* A forked child that makes count thumbnails of data and exits with the
 * number made. With sync (three pipes: start, done, hold), it waits for
 * start's write end to close first, writes a byte to done when finished,
 * then stays alive, its memory still held, until hold's write end closes:
 * like a pool child, which keeps libvips between tasks. */
static pid_t fork_zt(const unsigned char *data, size_t len, const char *mime, int count,
                     const int sync[6]) {
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        if (sync) {
            close(sync[1]);
            close(sync[2]);
            close(sync[5]);
            while (read(sync[0], &c, 1) < 0 && errno == EINTR)
                ;
        }
        int made = 0;
        for (int i = 0; i < count; i++) {
            drive2_thumbnail_t t;
            char err[512];
            if (drive2_thumbnail_make(data, len, mime, NULL, &t, err, sizeof err) == 0)
                made++;
            else
                fprintf(stderr, "zt-thumb-bench: %s\n", err);
            drive2_thumbnail_clear(&t);
        }
        if (sync) {
            if (write(sync[3], "x", 1) != 1)
                _exit(0);
            while (read(sync[4], &c, 1) < 0 && errno == EINTR)
                ;
        }
        _exit(made > 255 ? 255 : made);
    }
    return pid;
}

/* Our code, count times: one child looping (fresh = 0) or one child per
 * thumbnail (fresh = 1, libvips started each time). With peak: the memory
 * pass. */
static run_t run_zt(const unsigned char *data, size_t len, const char *mime, int count, int fresh,
                    int sampled) {
    run_t r = {0, 0, {0, 0, 0, 0}};
    double t0 = now_s();
    for (int round = 0; round < (fresh ? count : 1); round++) {
        pid_t pid = fork_zt(data, len, mime, fresh ? 1 : count, NULL);
        int st = -1;
        if (pid < 0)
            break;
        watch(&pid, 1, &st, sampled ? &r.peak : NULL);
        if (st > 0)
            r.ok += st;
    }
    r.seconds = now_s() - t0;
    return r;
}

/* The argv of one ImageMagick thumbnail of in (PDF: page 1 through its gs
 * delegate), into argv[6]. */
static void convert_argv(char *argv[6], const char *convert, const char *in, const char *out,
                         char *inbuf, size_t inbuf_size, int pdf) {
    snprintf(inbuf, inbuf_size, pdf ? "%s[0]" : "%s", in);
    argv[0] = (char *)convert;
    argv[1] = inbuf;
    argv[2] = "-thumbnail";
    argv[3] = "300x300";
    argv[4] = (char *)out;
    argv[5] = NULL;
}

static run_t run_convert(const char *convert, const char *in, const char *out, int pdf,
                         const char *policy, int count, int sampled) {
    run_t r = {0, 0, {0, 0, 0, 0}};
    char *argv[6], inbuf[700];
    convert_argv(argv, convert, in, out, inbuf, sizeof inbuf, pdf);
    double t0 = now_s();
    for (int i = 0; i < count; i++)
        if (run_cmd(argv, policy, sampled ? &r.peak : NULL) == 0)
            r.ok++;
    r.seconds = now_s() - t0;
    return r;
}

/* Without root: what convert delegates a PDF to, one after the other (gs
 * renders page 1, convert thumbnails it); the peak is the larger of the two. */
static run_t run_gs_convert(const char *convert, const char *pdf, const char *png, const char *out,
                            int count, int sampled) {
    run_t r = {0, 0, {0, 0, 0, 0}};
    char outfile[640];
    snprintf(outfile, sizeof outfile, "-sOutputFile=%s", png);
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        char *gs[] = {"gs",           "-q",
                      "-dNOPAUSE",    "-dBATCH",
                      "-dSAFER",      "-sDEVICE=png16m",
                      "-r72",         "-dFirstPage=1",
                      "-dLastPage=1", outfile,
                      (char *)pdf,    NULL};
        char *cv[] = {(char *)convert, (char *)png, "-thumbnail", "300x300", (char *)out, NULL};
        mem_t *p = sampled ? &r.peak : NULL;
        if (run_cmd(gs, NULL, p) == 0 && run_cmd(cv, NULL, p) == 0)
            r.ok++;
    }
    r.seconds = now_s() - t0;
    return r;
}

/* n thumbnails at the same time, in the deployment's shape: zt as n
 * children forked from this process (a stand-in for the zmqworker parent:
 * same libraries, libvips not started) that stay alive after their
 * thumbnail until all n are done, as pool children do; ImageMagick as n
 * convert processes (with their gs), which end when done. All start
 * together. Returns the peak sums; *ok counts the successes. */
static mem_t run_parallel(int n, int zt, const unsigned char *data, size_t len, const char *mime,
                          char *const argv[], const char *policy, int *ok) {
    pid_t pids[MAX_PARALLEL];
    int st[MAX_PARALLEL];
    mem_t peak = {0, 0, 0, 0};
    int sync[6]; /* start, done, hold: read end, write end each */
    *ok = 0;
    if (pipe2(sync, O_CLOEXEC) != 0 || pipe2(sync + 2, O_CLOEXEC) != 0 ||
        pipe2(sync + 4, O_CLOEXEC) != 0)
        return peak;
    for (int i = 0; i < n; i++)
        pids[i] = zt ? fork_zt(data, len, mime, 1, sync) : spawn(argv, policy, sync);
    close(sync[0]);
    close(sync[1]); /* go */
    close(sync[3]);
    close(sync[4]);
    if (zt) {
        /* sample until every child has finished its thumbnail (each writes
         * one byte; end of file if one died), bounded to a minute */
        int done = 0;
        fcntl(sync[2], F_SETFL, O_NONBLOCK);
        double deadline = now_s() + 60;
        while (done < n && now_s() < deadline) {
            mem_max(&peak, sample_trees(pids, n));
            char buf[MAX_PARALLEL];
            ssize_t got = read(sync[2], buf, sizeof buf);
            if (got > 0)
                done += (int)got;
            else if (got == 0)
                break;
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
        mem_max(&peak, sample_trees(pids, n));
    }
    close(sync[2]);
    close(sync[5]); /* release the children */
    watch(pids, n, st, &peak);
    for (int i = 0; i < n; i++)
        if (zt ? st[i] == 1 : st[i] == 0)
            (*ok)++;
    return peak;
}

static double per_s(run_t r) {
    return r.seconds > 0 ? r.ok / r.seconds : 0;
}

static void make_jpeg(const char *path) {
    VipsImage *xyz = NULL, *grad = NULL, *noise = NULL, *sum = NULL, *img = NULL;
    /* a smooth colour gradient with sensor-like noise: compresses like a
     * photo, unlike a flat test card */
    if (vips_xyz(&xyz, 4000, 3000, NULL) == 0 &&
        vips_linear1(xyz, &grad, 255.0 / 4000, 0, NULL) == 0 &&
        vips_gaussnoise(&noise, 4000, 3000, "sigma", 4.0, "mean", 0.0, NULL) == 0 &&
        vips_add(grad, noise, &sum, NULL) == 0) {
        VipsImage *bands[3] = {NULL, NULL, NULL};
        VipsImage *b1 = NULL, *joined = NULL;
        vips_extract_band(sum, &bands[0], 0, NULL);
        vips_extract_band(sum, &bands[1], 1, NULL);
        vips_linear1(bands[0], &b1, -1.0, 255.0, NULL);
        bands[2] = b1;
        if (vips_bandjoin(bands, &joined, 3, NULL) == 0 &&
            vips_cast_uchar(joined, &img, NULL) == 0 &&
            vips_jpegsave(img, path, "Q", 85, NULL) != 0)
            fprintf(stderr, "zt-thumb-bench: cannot write %s: %s\n", path, vips_error_buffer());
        for (int i = 0; i < 3; i++)
            if (bands[i])
                g_object_unref(bands[i]);
        if (joined)
            g_object_unref(joined);
    }
    VipsImage *all[] = {xyz, grad, noise, sum, img};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            g_object_unref(all[i]);
}

static int make_pdf(const char *dir, const char *pdf) {
    char ps[600];
    snprintf(ps, sizeof ps, "%s/page.ps", dir);
    FILE *f = fopen(ps, "w");
    if (!f)
        return -1;
    /* an A4 page of text and shapes, like a scanned report's first page */
    fputs("%!PS\n<< /PageSize [595 842] >> setpagedevice\n"
          "/Helvetica findfont 14 scalefont setfont\n",
          f);
    for (int i = 0; i < 40; i++)
        fprintf(f,
                "50 %d moveto (Line %d of the quarterly report: revenue, costs, outlook.) show\n",
                780 - i * 18, i + 1);
    fputs("0.2 setgray 350 60 200 150 rectfill 0.6 setgray 100 100 100 0 360 arc fill\n"
          "showpage\n",
          f);
    fclose(f);
    char *argv[] = {"ps2pdf", ps, (char *)pdf, NULL};

    return run_cmd(argv, NULL, NULL);
}

static void usage(FILE *out) {
    fprintf(out, "usage: zt-thumb-bench [--count N] [--concurrent N] [--jpeg FILE] [--pdf FILE] "
                 "[--convert PATH] [--json]\n");
}

/* A copy of ImageMagick's system policy without the line that refuses PDF
 * (every resource limit stays), at path. Returns 0 when one was written. */
static int write_pdf_policy(const char *path) {
    FILE *in = fopen(SYSTEM_POLICY, "r");
    if (!in)
        return -1;
    FILE *out = fopen(path, "w");
    if (!out) {
        fclose(in);
        return -1;
    }
    char line[1024];
    int dropped = 0;
    while (fgets(line, sizeof line, in)) {
        if (strstr(line, "domain=\"coder\"") && strstr(line, "pattern=\"PDF\"")) {
            dropped = 1;
            continue;
        }
        fputs(line, out);
    }
    fclose(in);
    return fclose(out) == 0 && dropped ? 0 : -1;
}

/* Threads of this process (/proc/self/task entries). */
static int count_threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static double mib(long kib) {
    return (double)kib / 1024.0;
}

static void print_row(const char *name, run_t speed, run_t memory) {
    printf("  %-16s %7.2f /s   RSS %5.1f  PSS %5.1f  USS %5.1f  dirty %5.1f MiB   (%d ok)\n", name,
           per_s(speed), mib(memory.peak.rss), mib(memory.peak.pss), mib(memory.peak.uss),
           mib(memory.peak.dirty), speed.ok);
}

/* (with n - with 1) / (n - 1): what each thumbnail beyond the first adds */
static mem_t extra_each(mem_t one, mem_t n_at_once, int n) {
    mem_t e = {(n_at_once.rss - one.rss) / (n - 1), (n_at_once.pss - one.pss) / (n - 1),
               (n_at_once.uss - one.uss) / (n - 1), (n_at_once.dirty - one.dirty) / (n - 1)};
    return e;
}

static void print_parallel(const char *name, mem_t one, mem_t all, int n, int ok) {
    mem_t e = extra_each(one, all, n);
    printf("  %-18s RSS %5.1f  PSS %5.1f  USS %5.1f  dirty %5.1f MiB"
           "   (1 alone: RSS %.1f USS %.1f; %d at once: RSS %.1f USS %.1f; %d ok)\n",
           name, mib(e.rss), mib(e.pss), mib(e.uss), mib(e.dirty), mib(one.rss), mib(one.uss), n,
           mib(all.rss), mib(all.uss), ok);
}

static void json_mem(const char *key, mem_t m, const char *tail) {
    printf("\"%s\": {\"rss_kib\": %ld, \"pss_kib\": %ld, \"uss_kib\": %ld, \"dirty_kib\": %ld}%s",
           key, m.rss, m.pss, m.uss, m.dirty, tail);
}

static void json_run(const char *key, run_t speed, run_t memory) {
    printf("\"%s\": {\"per_s\": %.2f, \"ok\": %d, ", key, per_s(speed), speed.ok);
    json_mem("peak", memory.peak, "}, ");
}

int main(int argc, char **argv) {
    int count = 10, json = 0, parallel = 4;
    const char *jpeg = NULL, *pdf = NULL;
    const char *convert = access("/usr/bin/convert", X_OK) == 0 ? "/usr/bin/convert" : "convert";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
        else if (strcmp(argv[i], "--concurrent") == 0 && i + 1 < argc)
            parallel = atoi(argv[++i]);
        else if (strcmp(argv[i], "--jpeg") == 0 && i + 1 < argc)
            jpeg = argv[++i];
        else if (strcmp(argv[i], "--pdf") == 0 && i + 1 < argc)
            pdf = argv[++i];
        else if (strcmp(argv[i], "--convert") == 0 && i + 1 < argc)
            convert = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (count < 1 || count > 255) {
        fprintf(stderr, "zt-thumb-bench: --count must be 1..255\n");
        return 2;
    }
    if (parallel < 2 || parallel > MAX_PARALLEL) {
        fprintf(stderr, "zt-thumb-bench: --concurrent must be 2..%d\n", MAX_PARALLEL);
        return 2;
    }
    char err[256];
    /* libvips starts in the children only: this process forks them */
    char dir[256];
    snprintf(dir, sizeof dir, "%s/zt-thumb-bench-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("zt-thumb-bench: mkdtemp");
        return 1;
    }
    char jpeg_path[600], pdf_path[600], png[600], out[600], policy_path[600];
    snprintf(png, sizeof png, "%s/page.png", dir);
    snprintf(out, sizeof out, "%s/out.jpg", dir);
    snprintf(policy_path, sizeof policy_path, "%s/policy.xml", dir);
    if (!jpeg || !pdf) {
        /* making the inputs needs libvips here: do it in a child */
        snprintf(jpeg_path, sizeof jpeg_path, "%s/photo.jpg", dir);
        snprintf(pdf_path, sizeof pdf_path, "%s/page.pdf", dir);
        pid_t pid = fork();
        if (pid == 0) {
            if (drive2_thumbnail_init(err, sizeof err) != 0)
                _exit(1);
            if (!jpeg)
                make_jpeg(jpeg_path);
            _exit(!pdf && make_pdf(dir, pdf_path) != 0 ? 1 : 0);
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "zt-thumb-bench: cannot make the test files (needs ps2pdf)\n");
            return 1;
        }
        if (!jpeg)
            jpeg = jpeg_path;
        if (!pdf)
            pdf = pdf_path;
    }
    size_t jlen = 0, plen = 0;
    unsigned char *jdata = read_all(jpeg, &jlen), *pdata = read_all(pdf, &plen);
    if (!jdata || !pdata || jlen == 0 || plen == 0) {
        fprintf(stderr, "zt-thumb-bench: missing input file\n");
        return 1;
    }

    /* How ImageMagick gets a PDF here: directly, through a private policy
     * (root), or not at all (then gs and convert one after the other). */
    const char *policy = NULL;
    int pdf_mode = 0; /* 0 convert as is, 1 convert with the private policy, 2 gs then convert */
    if (run_convert(convert, pdf, out, 1, NULL, 1, 0).ok != 1) {
        if (geteuid() == 0 && write_pdf_policy(policy_path) == 0 &&
            run_convert(convert, pdf, out, 1, policy_path, 1, 0).ok == 1) {
            policy = policy_path;
            pdf_mode = 1;
        } else
            pdf_mode = 2;
    }

    /* speed, unsampled; then memory, the same work sampled */
    run_t jz = run_zt(jdata, jlen, "image/jpeg", count, 0, 0);
    run_t jf = run_zt(jdata, jlen, "image/jpeg", count, 1, 0);
    run_t jc = run_convert(convert, jpeg, out, 0, NULL, count, 0);
    run_t pz = run_zt(pdata, plen, "application/pdf", count, 0, 0);
    run_t pf = run_zt(pdata, plen, "application/pdf", count, 1, 0);
    run_t pc = pdf_mode == 2 ? run_gs_convert(convert, pdf, png, out, count, 0)
                             : run_convert(convert, pdf, out, 1, policy, count, 0);
    run_t jzm = run_zt(jdata, jlen, "image/jpeg", count, 0, 1);
    run_t jfm = run_zt(jdata, jlen, "image/jpeg", count, 1, 1);
    run_t jcm = run_convert(convert, jpeg, out, 0, NULL, count, 1);
    run_t pzm = run_zt(pdata, plen, "application/pdf", count, 0, 1);
    run_t pfm = run_zt(pdata, plen, "application/pdf", count, 1, 1);
    run_t pcm = pdf_mode == 2 ? run_gs_convert(convert, pdf, png, out, count, 1)
                              : run_convert(convert, pdf, out, 1, policy, count, 1);

    /* several at once (convert's outputs all go to one file: only the
     * memory counts here) */
    char *jargv[6], *pargv[6], jin[700], pin[700];
    convert_argv(jargv, convert, jpeg, out, jin, sizeof jin, 0);
    convert_argv(pargv, convert, pdf, out, pin, sizeof pin, 1);
    int ok_z1, ok_zn, ok_c1, ok_cn, ok_pz1, ok_pzn, ok_pc1 = 0, ok_pcn = 0;
    mem_t jz1 = run_parallel(1, 1, jdata, jlen, "image/jpeg", NULL, NULL, &ok_z1);
    mem_t jzn = run_parallel(parallel, 1, jdata, jlen, "image/jpeg", NULL, NULL, &ok_zn);
    mem_t jc1 = run_parallel(1, 0, NULL, 0, NULL, jargv, NULL, &ok_c1);
    mem_t jcn = run_parallel(parallel, 0, NULL, 0, NULL, jargv, NULL, &ok_cn);
    mem_t pz1 = run_parallel(1, 1, pdata, plen, "application/pdf", NULL, NULL, &ok_pz1);
    mem_t pzn = run_parallel(parallel, 1, pdata, plen, "application/pdf", NULL, NULL, &ok_pzn);
    mem_t pc1 = {0, 0, 0, 0}, pcn = {0, 0, 0, 0};
    if (pdf_mode != 2) {
        pc1 = run_parallel(1, 0, NULL, 0, NULL, pargv, policy, &ok_pc1);
        pcn = run_parallel(parallel, 0, NULL, 0, NULL, pargv, policy, &ok_pcn);
    }
    /* last, because libvips cannot be stopped again: the same with libvips
     * started in this process before the fork, as zmqworker could do (only
     * safe while vips_init has started no thread: checked) */
    int ok_pp1 = 0, ok_ppn = 0, preinit_threads = -1;
    mem_t pp1 = {0, 0, 0, 0}, ppn = {0, 0, 0, 0};
    if (drive2_thumbnail_init(err, sizeof err) == 0) {
        preinit_threads = count_threads();
        if (preinit_threads == 1) {
            pp1 = run_parallel(1, 1, pdata, plen, "application/pdf", NULL, NULL, &ok_pp1);
            ppn = run_parallel(parallel, 1, pdata, plen, "application/pdf", NULL, NULL, &ok_ppn);
        }
    }
    const char *pdf_im = pdf_mode == 2 ? "gs, then convert" : "convert [0] + gs";

    if (json) {
        printf("{\"count\": %d, \"concurrent\": %d, \"pdf_imagemagick\": \"%s\", ", count, parallel,
               pdf_mode == 0   ? "convert"
               : pdf_mode == 1 ? "convert with gs delegate, private policy"
                               : "gs then convert, sequential");
        printf("\"jpeg\": {\"bytes\": %zu, ", jlen);
        json_run("zt", jz, jzm);
        json_run("zt_process", jf, jfm);
        json_run("convert", jc, jcm);
        json_mem("zt_extra_each", extra_each(jz1, jzn, parallel), ", ");
        json_mem("convert_extra_each", extra_each(jc1, jcn, parallel), ", ");
        printf("\"ratio\": %.2f, \"process_ratio\": %.2f}, ",
               per_s(jc) > 0 ? per_s(jz) / per_s(jc) : 0,
               per_s(jc) > 0 ? per_s(jf) / per_s(jc) : 0);
        printf("\"pdf\": {\"bytes\": %zu, ", plen);
        json_run("zt", pz, pzm);
        json_run("zt_process", pf, pfm);
        json_run("convert", pc, pcm);
        json_mem("zt_extra_each", extra_each(pz1, pzn, parallel), ", ");
        if (pdf_mode != 2)
            json_mem("convert_extra_each", extra_each(pc1, pcn, parallel), ", ");
        if (preinit_threads == 1)
            json_mem("zt_preinit_extra_each", extra_each(pp1, ppn, parallel), ", ");
        printf("\"ratio\": %.2f, \"process_ratio\": %.2f}}\n",
               per_s(pc) > 0 ? per_s(pz) / per_s(pc) : 0,
               per_s(pc) > 0 ? per_s(pf) / per_s(pc) : 0);
    } else {
        printf("%d thumbnails of each, 300x300 box; speed unsampled, memory = peak of the sum "
               "over each contender's live processes (sampled from /proc every ms)\n",
               count);
        printf("JPEG 4000x3000 (%zu bytes): %s\n", jlen, jpeg);
        print_row("zt in-process", jz, jzm);
        print_row("zt per-process", jf, jfm);
        print_row("convert", jc, jcm);
        if (per_s(jc) > 0)
            printf("  ratio: in-process %.1fx, per-process %.1fx faster than convert\n",
                   per_s(jz) / per_s(jc), per_s(jf) / per_s(jc));
        printf("PDF page 1 (%zu bytes): %s\n", plen, pdf);
        print_row("zt in-process", pz, pzm);
        print_row("zt per-process", pf, pfm);
        print_row(pdf_im, pc, pcm);
        if (pdf_mode == 1)
            printf("  (convert 'page.pdf[0]' with its gs delegate running at the same time; "
                   "Debian's policy refuses PDF, so each convert ran in a private mount "
                   "namespace with the policy minus its PDF line)\n");
        else if (pdf_mode == 2)
            printf("  (ImageMagick's policy refuses PDF and this is not root: timed what convert "
                   "delegates to, ghostscript at 72 dpi, then convert -thumbnail; memory is the "
                   "larger of the two, never both at once as convert's delegate would be)\n");
        if (per_s(pc) > 0)
            printf("  ratio: in-process %.1fx, per-process %.1fx faster\n", per_s(pz) / per_s(pc),
                   per_s(pf) / per_s(pc));
        printf("%d thumbnails at once: memory each one beyond the first adds, (peak with %d - "
               "peak with 1) / %d\n",
               parallel, parallel, parallel - 1);
        print_parallel("JPEG zt children", jz1, jzn, parallel, ok_zn);
        print_parallel("JPEG convert", jc1, jcn, parallel, ok_cn);
        print_parallel("PDF zt children", pz1, pzn, parallel, ok_pzn);
        if (pdf_mode != 2)
            print_parallel("PDF convert + gs", pc1, pcn, parallel, ok_pcn);
        else
            printf("  PDF convert + gs   not measured (needs root for the private policy)\n");
        if (preinit_threads == 1)
            print_parallel("PDF zt, pre-init", pp1, ppn, parallel, ok_ppn);
        else
            printf("  PDF zt, pre-init   not measured (vips_init left %d threads)\n",
                   preinit_threads);
        printf("RSS counts shared library pages in every process; PSS divides them among the "
               "processes mapping them; USS = pages only that process maps; dirty = private "
               "dirty pages (heap, stacks), never shareable. zt children are forked from this "
               "program like pool children from zmqworker, so they share its library pages.\n");
    }
    free(jdata);
    free(pdata);
    const char *made[] = {"photo.jpg", "page.pdf", "page.ps", "page.png", "out.jpg", "policy.xml"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        unlink(path);
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "zt-thumb-bench: could not remove %s\n", dir);
    return jz.ok == count && pz.ok == count ? 0 : 1;
}
