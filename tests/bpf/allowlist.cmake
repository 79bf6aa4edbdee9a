# owned by the allowlist part
