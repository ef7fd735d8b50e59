"""Ground truth: clips whose motion is known, and how well a model follows it.

- `synth/`: the synthetic renderer (`fsrun synth`): tracks, the classic and randomized scene
  families, the clip writer that encodes frames and writes the truth beside them.
- `metrics.py`: agreement of a prediction with the truth (Pearson r, error, lag).
- `grade.py`: one grading loop, every clip through one model session; tables and shares.
- `seeds.py`: the one table of seed ranges, per family and purpose, with no overlap.
"""
