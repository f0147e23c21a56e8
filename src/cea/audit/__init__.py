"""`cea audit`: checks (SAST, vulnerabilities, SBOM, policy, ...) behind one small protocol."""
