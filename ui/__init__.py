"""The local web app: `python run.py ui`. See docs/ui.md.

It reads what runs write into their folders (status.json, metrics.jsonl, trace.jsonl, samples/,
checkpoints/, train.log), keeps a small job queue in SQLite, and starts `run.py` as a separate
process for each job. No training code runs inside a request: a job is validated with the same
config loader and checks as run.py, and its dry-run memory plan is computed before it is queued.
"""
