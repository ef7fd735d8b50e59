"""The GPU kit: wheels carried to the lent GPU machine in chunks, and the stages run there.

Here (pip works): `python -m tools.gpu_kit download` fetches and splits the wheels.
There (no registry): `python3 -m tools.gpu_kit.device --chunk DIR STAGE` receives a
chunk, installs what is complete, runs the stage and leaves its results in $OUT.
README.md beside this file is the runbook.
"""
