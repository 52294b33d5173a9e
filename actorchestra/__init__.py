"""actorchestra: agents as A2A-speaking Ray actors behind a Ray Serve ingress.

The public API: subclass `Agent`, mark methods with `@skill`, list the class in the
runtime config, and run `actorchestra up`.
"""

from actorchestra.actors.agent import Agent, NeedsInput, Rejected, SkillContext, skill

__all__ = ["Agent", "NeedsInput", "Rejected", "SkillContext", "skill"]
