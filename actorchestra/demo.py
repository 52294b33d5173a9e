"""`make demo`: start the runtime, talk to an agent over A2A, run a team task, stop.

It runs what a new user would: `actorchestra up`, discovery through the agent card,
a streamed A2A task with the official client, then `actorchestra run` of a task the
planner splits across several agents (planned by the offline model server, shown
live), then `actorchestra down`, printing every URL on the way.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import a2a_pb2

from actorchestra import cli
from actorchestra.run_command import run_task
from actorchestra.settings import Settings


async def talk(base: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, f"{base}/a2a/text").get_agent_card()
        print(f"\ndiscovered agent {card.name!r}: {card.description}")
        print("  skills: " + ", ".join(s.id for s in card.skills))
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
        message = new_text_message("stream 5", role=a2a_pb2.Role.ROLE_USER)
        print("\nsending 'stream 5' with SendStreamingMessage; the reply streams in:")
        async for event in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
            if event.HasField("artifact_update"):
                text = event.artifact_update.artifact.parts[0].text.strip()
                print(f"  chunk: {text}", flush=True)
            elif event.HasField("status_update"):
                status = event.status_update.status
                state = a2a_pb2.TaskState.Name(status.state).removeprefix("TASK_STATE_")
                note = status.message.parts[0].text if status.message.parts else ""
                print(f"  status: {state.lower()}{'  (' + note + ')' if note else ''}")
        echo = await A2ACardResolver(http, f"{base}/a2a/echo").get_agent_card()
        client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(echo)
        message = new_text_message("hello from the demo", role=a2a_pb2.Role.ROLE_USER)
        async for event in client.send_message(a2a_pb2.SendMessageRequest(message=message)):
            task = event.task
        print(f"\necho answered: {task.artifacts[0].parts[0].text!r} (task {task.id})")


DEMO_TASK = (
    "echo the greeting hello team, and uppercase: actors speak a2a, "
    "then count the words of the results"
)


def main() -> int:
    os.environ.setdefault("ACTORCHESTRA_PORT", "8000")
    settings = Settings()
    code = cli.main(["up"])
    if code:
        return code
    try:
        asyncio.run(talk(settings.ingress_url))
        print(f'\nactorchestra run "{DEMO_TASK}"\n')
        code = asyncio.run(run_task(settings.ingress_url, DEMO_TASK, {"timeout_s": 120}))
    finally:
        print("\nstopping the runtime ...")
        cli.main(["down"])
    return code


if __name__ == "__main__":
    sys.exit(main())
