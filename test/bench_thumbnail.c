/* zt-thumb-bench: thumbnails per second and peak memory of Drive2's
 * thumbnail code (worker/drive2/thumbnail.c) against ImageMagick's
 * `convert -thumbnail 300x300`, on the same files in the same run.
 *
 *   zt-thumb-bench [--count N] [--jpeg FILE] [--pdf FILE] [--convert PATH] [--json]
 *
 * Without --jpeg/--pdf it makes a 4000x3000 photo-like JPEG (gradient plus
 * noise, quality 85) and a one-page A4 PDF (ps2pdf) in a temporary folder.
 * Each contender runs in its own child process so its peak RSS (wait4's
 * ru_maxrss) is its own:
 *   zt in-process  one child makes N thumbnails in a loop: the worker's case
 *                  (a pool child keeps libvips started between tasks);
 *   zt per-process N children, each starting libvips for one thumbnail;
 *   convert        N `convert FILE -thumbnail 300x300 out.jpg` processes.
 * ImageMagick's policy on Debian refuses PDF; then the PDF row runs what
 * convert would delegate to: ghostscript renders page 1 at 72 dpi, then
 * convert thumbnails the PNG (both processes counted).
 * Run it on a quiet machine: other load skews every figure. */
#include "thumbnail.h"
#include "zt_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vips/vips.h>

typedef struct {
    double seconds; /* wall time of all N */
    long rss_kib;   /* largest peak RSS of any process involved */
    int ok;         /* thumbnails made */
} run_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv (PATH lookup, no shell, output to /dev/null); returns the exit
 * status (-1 if it could not run) and raises *rss_kib to its peak RSS. */
static int run_cmd(char *const argv[], long *rss_kib) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2); /* convert's policy refusal is expected and handled */
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    int st = 0;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            return -1;
    if (ru.ru_maxrss > *rss_kib)
        *rss_kib = ru.ru_maxrss;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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

/* Our code on path, count times, in a child: loop (fresh = 0) or one child
 * per thumbnail (fresh = 1, libvips started each time). */
static run_t run_zt(const char *path, const char *mime, int count, int fresh) {
    run_t r = {0, 0, 0};
    size_t len = 0;
    unsigned char *data = read_all(path, &len);
    if (!data)
        return r;
    double t0 = now_s();
    for (int round = 0; round < (fresh ? count : 1); round++) {
        pid_t pid = fork();
        if (pid == 0) {
            int made = 0;
            for (int i = 0; i < (fresh ? 1 : count); i++) {
                drive2_thumbnail_t t;
                char err[512];
                if (drive2_thumbnail_make(data, len, mime, NULL, &t, err, sizeof err) == 0)
                    made++;
                else
                    fprintf(stderr, "zt-thumb-bench: %s: %s\n", path, err);
                drive2_thumbnail_clear(&t);
            }
            _exit(made > 255 ? 255 : made);
        }
        int st = 0;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &st, 0, &ru) < 0)
            break;
        if (ru.ru_maxrss > r.rss_kib)
            r.rss_kib = ru.ru_maxrss;
        if (WIFEXITED(st))
            r.ok += WEXITSTATUS(st);
    }
    r.seconds = now_s() - t0;
    free(data);
    return r;
}

static run_t run_convert(const char *convert, const char *in, const char *out, int count) {
    run_t r = {0, 0, 0};
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        char *argv[] = {(char *)convert, (char *)in, "-thumbnail", "300x300", (char *)out, NULL};
        if (run_cmd(argv, &r.rss_kib) == 0)
            r.ok++;
    }
    r.seconds = now_s() - t0;
    return r;
}

/* What convert delegates a PDF to: gs renders page 1, convert thumbnails it. */
static run_t run_gs_convert(const char *convert, const char *pdf, const char *png, const char *out,
                            int count) {
    run_t r = {0, 0, 0};
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
        if (run_cmd(gs, &r.rss_kib) == 0 && run_cmd(cv, &r.rss_kib) == 0)
            r.ok++;
    }
    r.seconds = now_s() - t0;
    return r;
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
    long ignored = 0;
    return run_cmd(argv, &ignored);
}

static void usage(FILE *out) {
    fprintf(out, "usage: zt-thumb-bench [--count N] [--jpeg FILE] [--pdf FILE] [--convert PATH] "
                 "[--json]\n");
}

int main(int argc, char **argv) {
    int count = 10, json = 0;
    const char *jpeg = NULL, *pdf = NULL;
    const char *convert = access("/usr/bin/convert", X_OK) == 0 ? "/usr/bin/convert" : "convert";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = atoi(argv[++i]);
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
    char err[256];
    /* libvips starts in the children only: this process forks them */
    char dir[256];
    snprintf(dir, sizeof dir, "%s/zt-thumb-bench-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("zt-thumb-bench: mkdtemp");
        return 1;
    }
    char jpeg_path[600], pdf_path[600], png[600], out[600];
    snprintf(png, sizeof png, "%s/page.png", dir);
    snprintf(out, sizeof out, "%s/out.jpg", dir);
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
    struct stat sj, sp;
    if (stat(jpeg, &sj) != 0 || stat(pdf, &sp) != 0) {
        fprintf(stderr, "zt-thumb-bench: missing input file\n");
        return 1;
    }

    run_t jz = run_zt(jpeg, "image/jpeg", count, 0);
    run_t jf = run_zt(jpeg, "image/jpeg", count, 1);
    run_t jc = run_convert(convert, jpeg, out, count);
    run_t pz = run_zt(pdf, "application/pdf", count, 0);
    run_t pf = run_zt(pdf, "application/pdf", count, 1);
    run_t pc = run_convert(convert, pdf, out, 1);
    int pdf_delegated = pc.ok == 0;
    if (pdf_delegated)
        pc = run_gs_convert(convert, pdf, png, out, count);
    else
        pc = run_convert(convert, pdf, out, count);

    if (json) {
        printf("{\"count\": %d, \"jpeg\": {\"bytes\": %lld, \"zt_per_s\": %.2f, "
               "\"zt_rss_kib\": %ld, \"zt_process_per_s\": %.2f, \"zt_process_rss_kib\": %ld, "
               "\"convert_per_s\": %.2f, \"convert_rss_kib\": %ld, \"ratio\": %.2f, "
               "\"process_ratio\": %.2f}, ",
               count, (long long)sj.st_size, per_s(jz), jz.rss_kib, per_s(jf), jf.rss_kib,
               per_s(jc), jc.rss_kib, per_s(jc) > 0 ? per_s(jz) / per_s(jc) : 0,
               per_s(jc) > 0 ? per_s(jf) / per_s(jc) : 0);
        printf("\"pdf\": {\"bytes\": %lld, \"zt_per_s\": %.2f, \"zt_rss_kib\": %ld, "
               "\"zt_process_per_s\": %.2f, \"zt_process_rss_kib\": %ld, \"convert_per_s\": %.2f, "
               "\"convert_rss_kib\": %ld, \"convert_via_gs\": %s, \"ratio\": %.2f, "
               "\"process_ratio\": %.2f}}\n",
               (long long)sp.st_size, per_s(pz), pz.rss_kib, per_s(pf), pf.rss_kib, per_s(pc),
               pc.rss_kib, pdf_delegated ? "true" : "false",
               per_s(pc) > 0 ? per_s(pz) / per_s(pc) : 0,
               per_s(pc) > 0 ? per_s(pf) / per_s(pc) : 0);
    } else {
        printf("%d thumbnails of each, 300x300 box\n", count);
        printf("JPEG 4000x3000 (%lld bytes): %s\n", (long long)sj.st_size, jpeg);
        printf("  zt in-process   %8.2f /s   peak RSS %6ld MiB   (%d ok)\n", per_s(jz),
               jz.rss_kib / 1024, jz.ok);
        printf("  zt per-process  %8.2f /s   peak RSS %6ld MiB   (%d ok)\n", per_s(jf),
               jf.rss_kib / 1024, jf.ok);
        printf("  convert         %8.2f /s   peak RSS %6ld MiB   (%d ok)\n", per_s(jc),
               jc.rss_kib / 1024, jc.ok);
        if (per_s(jc) > 0)
            printf("  ratio: in-process %.1fx, per-process %.1fx faster than convert\n",
                   per_s(jz) / per_s(jc), per_s(jf) / per_s(jc));
        printf("PDF page 1 (%lld bytes): %s\n", (long long)sp.st_size, pdf);
        printf("  zt in-process   %8.2f /s   peak RSS %6ld MiB   (%d ok)\n", per_s(pz),
               pz.rss_kib / 1024, pz.ok);
        printf("  zt per-process  %8.2f /s   peak RSS %6ld MiB   (%d ok)\n", per_s(pf),
               pf.rss_kib / 1024, pf.ok);
        printf("  %-15s %8.2f /s   peak RSS %6ld MiB   (%d ok)\n",
               pdf_delegated ? "gs + convert" : "convert", per_s(pc), pc.rss_kib / 1024, pc.ok);
        if (pdf_delegated)
            printf("  (ImageMagick's policy refuses PDF here: timed what convert delegates "
                   "to, ghostscript at 72 dpi, then convert -thumbnail)\n");
        if (per_s(pc) > 0)
            printf("  ratio: in-process %.1fx, per-process %.1fx faster\n", per_s(pz) / per_s(pc),
                   per_s(pf) / per_s(pc));
    }
    const char *made[] = {"photo.jpg", "page.pdf", "page.ps", "page.png", "out.jpg"};
    for (size_t i = 0; i < sizeof made / sizeof made[0]; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, made[i]);
        unlink(path);
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "zt-thumb-bench: could not remove %s\n", dir);
    return jz.ok == count && pz.ok == count ? 0 : 1;
}
