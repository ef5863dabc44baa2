"""Monitoring, centralized logging, alerting and cost controls for the moderation service."""
