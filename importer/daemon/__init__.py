"""The daemon: one worker loop per register over its inbox (readiness, file-system watching, systemd)."""
