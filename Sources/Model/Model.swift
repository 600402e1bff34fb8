/// Model: flat parameters, BLAS-backed kernels, the Llama-family transformer, GGUF,
/// safetensors, the byte-level BPE tokenizer, counter-based RNG and sampling.
