"""Everything that speaks SQL: engine set-up, the schema, job rows and the control plane."""
