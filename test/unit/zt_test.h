/* zt_test: a tiny assertion kit for unit tests. Checks are never compiled out,
 * print both values on failure, and count failures; main returns
 * zt_test_summary() so ctest sees the outcome. */
#ifndef ZT_TEST_H
#define ZT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int zt_test_failures;
static int zt_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        zt_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            zt_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long zt_a_ = (long long)(a), zt_b_ = (long long)(b);                                  \
        zt_test_checks++;                                                                          \
        if (zt_a_ != zt_b_) {                                                                      \
            zt_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    zt_a_, zt_b_);                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *zt_a_ = (a), *zt_b_ = (b);                                                     \
        zt_test_checks++;                                                                          \
        if (!zt_a_ || !zt_b_ || strcmp(zt_a_, zt_b_) != 0) {                                       \
            zt_test_failures++;                                                                    \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, zt_a_ ? zt_a_ : "(null)", zt_b_ ? zt_b_ : "(null)");                       \
        }                                                                                          \
    } while (0)

#define RUN(test_fn)                                                                               \
    do {                                                                                           \
        int zt_before_ = zt_test_failures;                                                         \
        test_fn();                                                                                 \
        fprintf(stderr, "%s %s\n", zt_test_failures == zt_before_ ? "ok  " : "FAIL", #test_fn);    \
    } while (0)

static inline int zt_test_summary(void) {
    fprintf(stderr, "%d checks, %d failed\n", zt_test_checks, zt_test_failures);
    return zt_test_failures ? 1 : 0;
}

#endif
