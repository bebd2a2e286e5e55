"""The benchmark stage: ``arms`` (which trainer and plans each arm uses), ``run`` (data, plans, training and
prediction through the stock commands), ``report`` (tables, charts, verdict), ``eta`` (progress estimate)."""
