"""Model files as tensors: safetensors read straight from stored chunks, compared, and merged.

* :mod:`vault.ml.tensors`: safetensors headers and tensor bytes read from a file's chunks (or
  from a file on disk), decoded for numpy or torch.
* :mod:`vault.ml.lora`: what a LoRA adapter directory says about the modules it changes, and the
  check that they exist in a base model with matching shapes.

numpy, torch, transformers and peft are imported inside the functions that need them.
"""
