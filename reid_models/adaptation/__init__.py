"""Online, practically unsupervised fine-tuning (seed 002 §3.2): mining, loss, hold-out guardrails."""
