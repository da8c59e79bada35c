"""Training recipe for the workbench's embedded default draft/target pair.

Pipeline (see recipe.train_default_pair):
  corpus.py     local, licence-checked text sources -> whole documents -> train / held-out split by document
  tokenizer.py  byte-level BPE (HF `tokenizers`) saved as a PreTrainedTokenizerFast directory
  shapes.py     Llama-architecture shapes, half-precision HF save
  loop.py       next-token training of the target, KL distillation of the draft, held-out evaluation
  heldout_prompts.py  deterministic held-out prompt set cut from the held-out documents
  recipe.py     RecipeConfig presets (default, micro) and the orchestration into <out>/{target,draft}
  (workbench/commands/train.py is the `workbench train` subcommand)
"""
