#ifndef EBFT_CPU_CHECK_H
#define EBFT_CPU_CHECK_H

/// The instruction-set extensions this build needs that the CPU lacks, as a comma-separated
/// list ("" when none; always "" off x86-64 and in a portable build). Checked automatically
/// before main.
const char *ebft_cpu_missing_features(void);

#endif
