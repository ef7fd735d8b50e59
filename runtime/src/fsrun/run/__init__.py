"""The run of one video, stage by stage: what is asked (request), the plan, the model session, the one runner, decode-side sampling, encode, head and stitching, post-processing, reports."""
