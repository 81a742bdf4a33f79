"""Fastly's billing API below Airflow: requests, paging and answers, one module per generation."""
