"""Celery workers for training, augmentation and evaluation jobs, and their job records.

Light modules (settings, jobs, specs, datasets, celery_app) may be imported by the service;
`workers.tasks` imports torch-heavy code lazily, inside the tasks, and only runs in workers.
"""
