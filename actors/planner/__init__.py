"""The planner: turns a task into a graph of subtasks and runs it across agents."""
