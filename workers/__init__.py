"""RQ workers: thin jobs that load rows by id, call services and commit.

`notifier` turns notification rows into emails (`python -m workers.run notifier`);
billing sync, provisioning and reconcile arrive with their issues.
"""
