"""Development scaffolding (make run, the SMTP sink): not part of the production install."""
