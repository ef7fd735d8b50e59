"""fsrun studio: a local web app over a folder of videos (`fsrun studio FOLDER`).

Library (every video, its state, a queue scripting them with one model session), viewer (the
video beside its script, raw positions and post-processing redrawn from the embedding cache),
editor (move, add and delete points with undo; save a script or a truth file), crop, and
training on the folder's labels. Needs `pip install 'fsrun[studio]'` (Starlette and uvicorn);
the page is plain HTML, CSS and JavaScript served from this package: no build step, no CDN.

- security.py: the token, Origin/Host checks, paths kept under the folder
- state.py:    what the studio keeps in FOLDER/.fsrun-studio (queue, crops, the probe index)
- library.py:  the folder's videos and what each has (scripts, truth, duration)
- jobs.py:     the queue and its one worker holding one ModelSession; progress as events
- viewer.py:   a video's raw positions, post-processing, frames, saving
- app.py:      the Starlette app and its routes; cli.py the command
"""
