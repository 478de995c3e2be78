"""Maintenance checklists: the catalogue (items as data), periods, settings, the audit history, HITL prompts, evidence collectors."""
