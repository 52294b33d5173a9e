"""Who does the work: agent actors, the registry service, (later) planner, LLM, memory, history."""
