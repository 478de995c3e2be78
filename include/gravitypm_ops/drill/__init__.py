"""Disaster-recovery drills: restore into isolated targets, judge RTO / RPO, report."""
