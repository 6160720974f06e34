"""Fault injection against the real local system (`make chaos`).

cluster   Kafka and the store through deploy/local's scripts, service instances as processes
traffic   complaints, duplicates, replies and deliberately bad inputs, with a ledger
desk      the agent desk and the customers: actions driven by what the system publishes
faults    a seeded schedule of kill -9, store and broker restarts, SIGSTOP zombies
verdict   what came out, read from the outside after the system settles
driver    one round: all of the above, then the verdict
fuzz      100k generated records through intake, each one accounted for
"""
