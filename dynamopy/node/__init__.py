"""The asyncio runtime of one node: wires core + storage + peer + clock."""
