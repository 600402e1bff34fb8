// Runs before main and before any Swift code. On x86-64 the Swift targets are compiled with
// -target-cpu haswell (x86-64-v3: AVX, AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE; Package.swift
// defines EBFT_NEEDS_X86_64_V3 then), so on an older CPU the first such instruction would end
// the process with SIGILL and no word. This file is plain C built for the baseline CPU; it asks
// CPUID and says what is missing instead. A portable build (EBFT_PORTABLE=1, or not x86-64)
// leaves the check out.
//
// Test hook: EBFT_DIST_PRETEND_CPU_LACKS=avx2,fma makes the check treat those features as
// missing (so the message can be tested on a CPU that has them).

#include "CPUCheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(EBFT_NEEDS_X86_64_V3)
#include <cpuid.h>

static char missing[128];

static int pretend_lacks(const char *name) {
    const char *list = getenv("EBFT_DIST_PRETEND_CPU_LACKS");
    if (list == NULL) return 0;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        int starts = p == list || p[-1] == ',';
        int ends = p[n] == '\0' || p[n] == ',';
        if (starts && ends) return 1;
    }
    return 0;
}

static void need(int present, const char *name) {
    if (present && !pretend_lacks(name)) return;
    if (missing[0] != '\0') strncat(missing, ", ", sizeof missing - strlen(missing) - 1);
    strncat(missing, name, sizeof missing - strlen(missing) - 1);
}

const char *ebft_cpu_missing_features(void) {
    missing[0] = '\0';
    unsigned a = 0, b = 0, c = 0, d = 0;
    unsigned c1 = 0, b7 = 0, cx = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) c1 = c;
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        b7 = b;
    }
    if (__get_cpuid(0x80000001, &a, &b, &c, &d)) cx = c;
    // AVX registers are usable only if the OS saves them (OSXSAVE, then XCR0 bits 1 and 2).
    int ymm = 0;
    if (c1 & (1u << 27)) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        ymm = (lo & 6u) == 6u;
    }
    need((c1 & (1u << 28)) && ymm, "avx");
    need((b7 & (1u << 5)) && ymm, "avx2");
    need((c1 & (1u << 12)) && ymm, "fma");
    need(b7 & (1u << 3), "bmi1");
    need(b7 & (1u << 8), "bmi2");
    need(c1 & (1u << 29), "f16c");
    need(cx & (1u << 5), "lzcnt");
    need(c1 & (1u << 22), "movbe");
    return missing;
}

__attribute__((constructor)) static void ebft_cpu_check(void) {
    const char *lacks = ebft_cpu_missing_features();
    if (lacks[0] == '\0') return;
    fprintf(stderr,
            "error: this build of ebft-dist needs AVX2 and FMA: an x86-64-v3 CPU (Intel Haswell or newer, "
            "AMD Zen or newer), as Package.swift compiles it with -target-cpu haswell; this CPU lacks: %s. "
            "Run it on a newer CPU, or build a portable binary: EBFT_PORTABLE=1 swift build -c release.\n",
            lacks);
    fflush(stderr);
    _exit(1);
}

#else

const char *ebft_cpu_missing_features(void) { return ""; }

#endif
