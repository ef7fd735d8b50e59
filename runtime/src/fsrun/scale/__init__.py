"""Running a whole library beyond one process: `fsrun DIR --ray [ADDRESS]` (extra `fsrun[ray]`).

Nothing here imports Ray at module level; `ray_folder` imports it when a run starts.
"""
