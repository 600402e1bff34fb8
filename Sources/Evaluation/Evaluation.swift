/// Evaluation: downstream metrics for code (sandboxed execution, pass@k) and translation (BLEU).
