"""The mutation tool's judged-equivalent survivors (``python -m dynamopy.benchlib.mutation``):
mutant name -> the reason no test can tell it apart from the original. Data only; the tool
leaves these out of its third score figure."""

from __future__ import annotations

# Survivors judged equivalent (no test can tell them apart from the original), with the
# reason. mutmut numbers mutants per function, so an entry goes stale when that function
# changes: re-judge the survivors then.
# ---- core/metadata_group.py and core/membership.py (session 5) ---------------------------
# Kinds as below: "equivalent", "unreachable", "text".
_MG = "dynamopy.core.metadata_group.x_"
_ALPHA1 = ("equivalent: with ALPHA = 1 every applied group change prunes the schedule to "
           "[(0, latest group)] (schedule_after) and bootstrap writes [(0, seeds)], so a "
           "snapshot's group_schedule always equals the acceptors fallback")
_CORE_SESSION5 = {
    **{f"{_MG}schedule_of__mutmut_{i}": _ALPHA1 for i in range(1, 7)},
    **{f"{_MG}schedule_of__mutmut_{i}":
       "equivalent: every membership snapshot has 'acceptors' (ClusterState.from_dict "
       "needs it), so the default is never used" for i in (13, 15)},
    f"{_MG}schedule_after__mutmut_13":
        "equivalent: pruning below epoch - 1 keeps one superseded pair more; every slot from "
        "the entry on has the same group, and only those slots are ever asked",
    f"{_MG}schedule_after__mutmut_14":
        "equivalent: with ALPHA = 1 the change decides from epoch + 1, so pruning below "
        "epoch + 2 keeps the same single pair",
    f"{_MG}plan_group__mutmut_13":
        "equivalent: trimming a list already at the target size keeps all of it (the "
        "result is sorted)",
    **{f"{_MG}change_problem__mutmut_{i}": "text: the last words of the 503/409 detail"
       for i in (14, 15, 41, 42)},
    f"{_MG}change_problem__mutmut_16":
        "equivalent: a leaving member outside the group leaves the live voters as they "
        "are, which the 503 check already found to be a majority",
    f"{_MG}change_problem__mutmut_32":
        "equivalent: past the 503 check at least a majority of voters is live, so at least "
        "majority - 1 remain without the leaver: one live spare (counted 1 or 2) is enough",
    # -- core/membership.py (re-run, session 5)
    "dynamopy.core.membership_changes.x__bootstrap__mutmut_69": "equivalent: Member's state defaults to normal",
    "dynamopy.core.membership_changes.x__bootstrap__mutmut_106":  # (102 before the identity merge)
        "equivalent: an empty group_schedule reads as [(0, acceptors)] (schedule_pairs, "
        "metadata_group.schedule_of), which is what bootstrap writes",
    "dynamopy.core.membership_changes.x__remove__mutmut_90":
        "equivalent: _leave sets pending_ring right after (or refuses the whole entry)",
    # (session 6: the per-op transitions moved, unchanged, to core/membership_changes.py)
    **{f"dynamopy.core.{name}":
       "equivalent for the state and the Paxos core: a set_group applies by its "
       "compare-and-set, never by its rid, and rids are unique per proposal. (Recording it "
       "only makes node/metalog call a re-commit of it a duplicate, which the compare-and-set "
       "refuses anyway, except after an A->B->A sequence, where the re-applied change is then "
       "missing from the log view)"
       for name in ("membership.xǁClusterStateǁapply__mutmut_13",
                    "membership_changes.x__set_group__mutmut_3",
                    "membership_changes.x__set_group__mutmut_23",
                    "membership_changes.x__set_group__mutmut_64")},
    # -- core/buggify.py (first run, session 5)
    "dynamopy.core.buggify.xǁBuggifyǁfires__mutmut_4": "text: the KeyError's message",
    **{f"dynamopy.core.buggify.xǁBuggifyǁfires__mutmut_{i}":
       "equivalent: random() returns exactly enable_p / fire_p with probability ~2**-53: "
       "< and <= pick alike" for i in (10, 12)},
    # -- core/placement.py (re-run after pull_sources, session 5)
    "dynamopy.core.placement.x_pull_sources__mutmut_18":
        "equivalent: moves are whole partitions (diff_tables) of at least 2**8 tokens "
        "(Q <= 2**24), so end - 1 and end - 2 lie in the same partition",
}
# ---- the node's quorum, hint and transfer code (issue 18, node half) ----------------------
# Judged against the unit and in-process tests (production Nodes over the in-memory seams).
# Kinds: "equivalent" (no behaviour differs), "timing"/"cost" (the same answers, later or with
# more calls), "text"/"metrics" (a message, a log line or a metric only). Survivors that do
# differ but no fast test reaches yet are not listed here (they stay in the score).
_CO = "dynamopy.node.coordinator.xǁCoordinatorǁ"
_HM = "dynamopy.node.hints.xǁHintManagerǁ"
_TM = "dynamopy.node.transfer.xǁTransferManagerǁ"
_FRUITLESS = ("timing: a fallback's empty answer starts the next target at once; without "
              "(or with extra) starts, the SPECULATE_S speculation starts the rest anyway")
_NODE_EQUIVALENT = {
    **_CORE_SESSION5,
    **{f"{_CO}read__mutmut_{i}": _FRUITLESS for i in (69, 77, 81, 82, 83, 84)},
    **{f"{_CO}read__mutmut_{i}":
       "cost: the local replica is asked through the peer transport to itself instead of "
       "in the same step; the same record" for i in (68, 76)},
    **{f"{_CO}read__mutmut_{i}":
       "equivalent: planning without serving_state's catch-up wait; a replica refuses a "
       "ring that misses a change in progress (stale_epoch) and the read catches up and "
       "retries, else the ring routes the key the same" for i in (2, 8)},
    **{f"{_CO}read__mutmut_{i}":
       "equivalent: the retry follows a successful wait_for_epoch, so require_ready and "
       "serving_state return the same state there" for i in (10, 11)},
    **{f"{_CO}write__mutmut_{i}":
       "equivalent: planning without serving_state's catch-up wait; a replica refuses a "
       "ring that misses a change in progress (stale_epoch) and the write catches up and "
       "retries, else the ring routes the key the same" for i in (3, 5)},
    # (session 9: write re-numbered by the re-stamp deadline, commit f1b0d2b; re-judged
    # against the current diffs: 72/80/87/88 -> 82/89/90, 93/95/97 -> 95/97/99, 96 -> 98,
    # 112/113 -> 116/117; 132 is new; leaving out on_fail (now 87) is killed)
    **{f"{_CO}write__mutmut_{i}":
       "timing: a failure not recorded (on_fail None, a no-op, or fail(None)) leaves the "
       "round pending until the budget; the same re-stamp or error follows, later"
       for i in (82, 89, 90)},
    **{f"{_CO}write__mutmut_{i}":
       "timing: every pending call is bounded by the request timeout, so the wait ends as "
       "soon without its own bound (or with a longer one)" for i in (95, 97, 99)},
    # read 49/51/54 (session 5): the local home replica is first in a read's plan and the
    # first R start at once, so local_sync checks it in the planning step, at this node's own
    # epoch, where check_epoch's ring check returns before looking at the token.
    f"{_CO}read__mutmut_49":
        "timing: the local home replica is checked in the planning step (only "
        "require_caught_up can refuse it there); a local fallback asked later refuses a ring "
        "change in between with stale_epoch instead of answering, and the read catches up "
        "and retries",
    **{f"{_CO}_start_put__mutmut_{i}":
       "equivalent: a hint this node keeps for itself as a fallback reads neither the epoch "
       "nor the wire form (_put_one's local hint branch)" for i in (6, 10)},
    f"{_CO}_start_put__mutmut_19":
        "cost: every local home write (not only one a commit behind) takes the catch-up "
        "path, a task that finds the replica caught up and writes; the same answers, and a "
        "replacement is refused there as in check_epoch",
    f"{_CO}_start_put__mutmut_34":
        "equivalent: a write starts every target in its planning step, so the local home "
        "replica is checked at this node's own epoch and check_epoch returns before reading "
        "the token",
    **{f"{_CO}_start_put__mutmut_{i}":
       "unreachable: a write starts every target in its planning step, at this node's own "
       "epoch, so check_epoch never refuses the local home replica with stale_epoch"
       for i in (37, 38)},
    f"{_CO}read__mutmut_51":
        "equivalent: reached only by the local home replica in the planning step, where "
        "check_epoch returns before reading the token",
    f"{_CO}read__mutmut_54":
        "unreachable: the local home replica is checked at this node's own epoch in the "
        "planning step, so check_epoch never refuses it with stale_epoch",
    f"{_CO}write__mutmut_98":
        "timing: a failed round waits 1 s less for late acks; the error (which says the "
        "write may still be stored) can count fewer of them",
    **{f"{_CO}write__mutmut_{i}":
       "cost: more than one catch-up retry; each needs new stale_epoch refusals, i.e. the "
       "ring changing again during the retry" for i in (116, 117)},
    f"{_CO}write__mutmut_132": "text: the 503 detail's words after the re-stamp count",
    f"{_CO}read__mutmut_5": "equivalent: attempt is only compared with 0",
    f"{_CO}_check_token__mutmut_10": "text: the refusal's seconds, printed to 0.1 s",
    # fanout.py
    # (session 6: run re-numbered by the one-timer rewrite; the old run 14 is killed now)
    "dynamopy.node.fanout.xǁFanOutǁrun__mutmut_7":
        "cost: with no backups the speculation timer still runs first; it launches nothing "
        "and arms the budget for the time left (the same end, one more timer)",
    "dynamopy.node.fanout.xǁFanOutǁrun__mutmut_8":
        "equivalent: speculate_s == budget_s never happens (SPECULATE_S is 0.1 s, the budget "
        "the request timeout + 0.5 s); then the budget would end one loop step later",
    "dynamopy.node.fanout.xǁFanOutǁrun__mutmut_23":
        "equivalent: after the round the timer slot is never read again; any value drops the "
        "handle (and with it the cycle through its callback)",
    "dynamopy.node.fanout.xǁFanOutǁ__init____mutmut_13":
        "equivalent: run() sets the timer before anything reads it",
    "dynamopy.node.fanout.xǁFanOutǁ_settle__mutmut_9": _FRUITLESS,
    "dynamopy.node.fanout.xǁFanOutǁ_settle__mutmut_26":
        "timing: a failure does not start the next target at once; the SPECULATE_S "
        "speculation starts the rest (writes start every target at once anyway)",
    **{f"dynamopy.node.fanout.xǁ_TaskDoneǁ__call____mutmut_{i}":
       "unreachable while a request waits: a call task is cancelled only when its node "
       "stops or crashes (the round's owner goes with it)" for i in range(2, 7)},
    **{f"dynamopy.node.fanout.xǁ_TaskDoneǁ__call____mutmut_{i}":
       "timing: a failed call's error escapes the callback unsettled; reads start the rest "
       "at SPECULATE_S, writes end at the budget with the same error" for i in (7, 14)},
    # (session 5: _TaskDone's numbers moved by one when it took over dropping the task from
    # the background set; re-judged against the current diffs)
    "dynamopy.node.fanout.xǁFanOutǁ__init____mutmut_2":
        "equivalent: a FanOut is built inside the running loop, the one the coordinator "
        "passes",
    "dynamopy.node.fanout.xǁFanOutǁ_settle__mutmut_12":
        "cost: a fallback's non-empty answer also starts the next target (one more call)",
    **{f"dynamopy.node.fanout.xǁFanOutǁ_settle__mutmut_{i}": "text: the failure's log line"
       for i in range(15, 24)},
    f"{_CO}read__mutmut_79":
        "timing: an unrecorded failure still starts the next target (fail(None) answers "
        "PENDING); the round can only fail at the budget instead of at once",
    f"{_CO}read__mutmut_90":
        "equivalent: at success some call is done unless the one reply was local, and then "
        "no call was started (R=1 asks only the local replica); it only spawns no-op repairs",
    f"{_CO}read__mutmut_107":
        "timing: every pending call is bounded by the request timeout, so the wait ends as "
        "soon without its own bound",
    # coordinator (session 5 re-run of the functions changed since session 3, coord5;
    # _fan_out's and _get_one's numbers moved, their older entries were dropped)
    **{f"{_CO}__init____mutmut_{i}":
       "cost: every peer call runs call_peer in a task instead of the node's task-free "
       "start_peer (documented as the same result, error and failure-detector reports)"
       for i in (7, 9)},
    f"{_CO}__init____mutmut_8":
        "equivalent: the node always passes start_peer (runtime.py)",
    **{f"{_CO}_call_in_task__mutmut_{i}":
       "unreachable: the default start_peer; the node always passes its own (runtime.py), "
       "the stand-ins in test_coordinator_restamp never start a call" for i in range(1, 11)},
    **{f"dynamopy.node.coordinator.x__failed__mutmut_{i}":
       "unreachable: used only by _start_put's stale_epoch branch for the local home "
       "replica, which never refuses (see _start_put 37/38)" for i in (1, 2)},
    f"{_CO}read__mutmut_7":
        "cost: serving_state awaited again although the caller just did (caught_up)",
    f"{_CO}read__mutmut_9":
        "equivalent: planning without serving_state's catch-up wait (as read 2/8: a replica "
        "refuses a ring that misses a change with stale_epoch, and the read catches up and "
        "retries), and the retry after a successful wait_for_epoch (as read 10/11)",
    f"{_CO}read__mutmut_18":
        "cost: the local replica is not moved to the front of the plan, so among the first R "
        "a remote call may replace the free local read; still the newest of R replies",
    f"{_CO}read__mutmut_109":
        "timing: every pending call is bounded by the request timeout, so the wait ends as "
        "soon without its own bound",
    **{f"{_CO}read__mutmut_{i}":
       "timing: a failed read waits 1 s less (or more) for late replies before its error "
       "(every call is bounded by the request timeout)" for i in (110, 111)},
    f"{_CO}_fan_out__mutmut_1":
        "cost: the running loop looked up on every fan-out instead of once",
    **{f"{_CO}_fan_out__mutmut_{i}":
       "cost: the local replica is asked through the peer transport to itself instead of "
       "in the same step; the same record" for i in (11, 13, 23)},
    **{f"{_CO}_fan_out__mutmut_{i}": _FRUITLESS for i in (14, 24)},
    **{f"{_CO}_fan_out__mutmut_{i}":
       "equivalent: FanOut takes the running loop itself when given none, the same one"
       for i in (15, 25)},
    **{f"{_CO}_fan_out__mutmut_{i}":
       "timing: the round's budget 1 s shorter or longer; the caller then waits for the "
       "pending calls (each bounded by the request timeout) before answering"
       for i in (32, 33)},
    f"{_CO}_get_one__mutmut_1":
        "equivalent: its only caller (_GetReply's retry) passes first=1",
    **{f"{_CO}_get_one__mutmut_{i}":
       "timing: one more not_caught_up retry, 50 ms later" for i in (10, 13)},
    f"dynamopy.node.coordinator.xǁ_PutReplyǁ__call____mutmut_3":
        "cost: a replica's stored version is not absorbed by the clock here (the callback "
        "fails); it is still heard by the round, which re-stamps above a newer one, so at "
        "most a later write from this node needs one re-stamp",
    f"dynamopy.node.coordinator.xǁ_PutReplyǁ__call____mutmut_9":
        "cost: extra hints: for a failed fallback (delivery re-homes a hint for a member that "
        "does not replicate the key) or for a home replica that refused for another reason "
        "(it refuses the delivery again; counted as dropped); the write's answer is the same",
    f"dynamopy.node.coordinator.xǁ_GetReplyǁ__call____mutmut_26":
        "timing: the retry after not_caught_up starts at once instead of 50 ms later, and "
        "tries once more",
    f"dynamopy.node.coordinator.xǁ_GetReplyǁ__call____mutmut_6":
        "timing: a reply that is not a record (no replica of this version sends one) leaves "
        "the call unsettled instead of failed; reads start the rest at SPECULATE_S",
    f"dynamopy.node.coordinator.xǁ_GetReplyǁ_chain__mutmut_3":
        "timing: a retry that failed for good leaves the call unsettled instead of failed; "
        "reads start the rest at SPECULATE_S and end at the budget with the same error",
    # hints.py
    **{f"{_HM}_deliver__mutmut_{i}":
       "timing: the delivery call waits the request timeout (or 6 s) instead of 5 s; a slow "
       "target fails later and backs off the same" for i in (66, 70, 73)},
    **{f"{_HM}_deliver__mutmut_{i}": "text: the back-off log line"
       for i in range(102, 112)},
    **{f"{_HM}_deliver__mutmut_{i}":
       "equivalent: the store keeps a (0, 0) entry for a target it held hints for, so the "
       "default is not read after a delivery" for i in (133, 134)},
    **{f"{_HM}_pass_on__mutmut_{i}":
       "cost: the live-normal filter only saves calls; a member it would leave out (down, "
       "joining, the leaver itself, which refuses hints while leaving) is tried in order and "
       "the next one takes the hint if it fails" for i in (8, 9, 14)},
    f"{_HM}_pass_on__mutmut_47": "text: the exception's message (logged by hand_off)",
    **{f"{_HM}_rehome__mutmut_{i}": "text: the exception's message (logged by the caller)"
       for i in range(35, 40)},
    **{f"{_HM}hand_off__mutmut_{i}": "text: the retry log line" for i in range(14, 22)},
    **{f"{_HM}run__mutmut_{i}": "text: the delivery loop's error log line"
       for i in range(8, 14)},
    **{f"{_HM}hand_off__mutmut_{i}":
       "equivalent: the default is read only when no hint for the target is left, and then "
       "_pass_on finds nothing to pass (count and bytes are zero together)"
       for i in (7, 9, 10, 11, 12)},
    # (session 5 re-run of hints.py after the expired-at-birth refusal)
    f"{_HM}__init____mutmut_1":
        "equivalent: the node always passes --max-clock-offset-ms (runtime.py); the default "
        "serves test stand-ins, whose graces are nowhere near 500 ms",
    **{f"{_HM}_drop_expired__mutmut_{i}": "text: the expiry log line" for i in (17, 23, 25, 26)},
    f"{_HM}store__mutmut_16":
        "text: the leaving refusal's detail (the coordinator reads a refusal's code only)",
    **{f"{_HM}_deliver__mutmut_{i}":
       "buggify only: the simulator's hint-pause knob (off in production and in these "
       "tests; delay_s is 0 whenever the knob does not fire)"
       for i in (*range(31, 42), 43, 44, 137)},
    f"{_HM}_pass_on__mutmut_31":
        "timing: after a batch of only expired hints the pass stops; hand_off reports hints "
        "left and the leave calls it again, which passes the rest on",
    **{f"{_HM}rpc_receive__mutmut_{i}": "text: the skipped-records log line"
       for i in range(28, 38)},
    f"{_HM}rpc_receive__mutmut_39":
        "never read: the holder ignores the count a hints call answers (only an error is read)",
    # replica.py
    **{f"dynamopy.node.replica.xǁReplicaǁput__mutmut_{i}":
       "equivalent: hint_lookup finds the hint just stored, so held is never None and "
       "held.version >= record.version" for i in (36, 41)},
    "dynamopy.node.replica.xǁ_Storedǁ__call____mutmut_2":
        "unreachable: the group committer never cancels a write's future (a stop fails it "
        "with CommitterClosed), so the cancelled branch is a guard only",
    "dynamopy.node.replica.xǁReplicaǁput__mutmut_12":
        "text: the leaving refusal's detail (the coordinator reads a refusal's code only)",
    "dynamopy.node.replica.xǁReplicaǁput__mutmut_40":
        "equivalent: hint_lookup finds the hint just stored, so held is never None",
    "dynamopy.node.replica.xǁReplicaǁput__mutmut_44":
        "equivalent: max() with record.version, and every version is at least 1",
    **{f"dynamopy.node.replica.xǁReplicaǁ{name}__mutmut_{i}":
       "buggify only: the system simulator's late-ack knob (off in production and in "
       "these tests)"
       for name, i in (("put_nowait", 23), *(("_late", j) for j in range(1, 23)))},
    **{f"dynamopy.node.replica.xǁ_Storedǁ__call____mutmut_{i}":
       "equivalent: a put that was not applied found something at least as new stored, so "
       "current is never None" for i in (22, 23)},
    "dynamopy.node.replica.xǁ_Storedǁ__call____mutmut_6":
        "metrics: replica_put_seconds only",
    # transfer.py
    **{f"{_TM}_gainer_done__mutmut_{i}":
       "timing: the status call's bound (2 s, 3 s or the request timeout); an unanswered "
       "call is 'not done' either way and the driver asks again" for i in (7, 11, 14)},
    **{f"{_TM}_pull_all__mutmut_{i}":
       "view only: /node's transfer progress; the driver asks is_done (the durable marker), "
       "not the progress" for i in (2, 3, 4, 27, 28, 29)},
    f"{_TM}_pull_all__mutmut_26": "equivalent: only the done marker's presence is read",
    **{f"{_TM}_pull_all__mutmut_{i}": "text: the transfer-done log line"
       for i in range(30, 40)},
    f"{_TM}_is_driver__mutmut_4":
        "equivalent in outcome: the lowest-numbered live member drives a join instead of the "
        "joiner, the same way (asks the gainers, proposes finish_join)",
    **{f"{_TM}_is_driver__mutmut_{i}":
       "cost: more than one live member drives a removal; each asks the gainers, and a "
       "second finish for the same change_epoch is refused" for i in (17, 21)},
    f"{_TM}_is_driver__mutmut_10":
        "equivalent in outcome: during a removal the other members are normal (one change at "
        "a time); a live removed member may drive its own removal, the same way",
    **{f"{_TM}_pull_from__mutmut_{i}":
       "equivalent: msgpack's default is raw=False (None is as false), and the cursor "
       "holds no strings" for i in (9, 11, 12)},
    **{f"{_TM}_pull_from__mutmut_{i}":
       "timing: a dead member being removed is skipped as a source after the 5 s grace for "
       "down sources instead of at once" for i in (25, 28, 29, 31)},
    f"{_TM}_pull_from__mutmut_30":
        "equivalent in outcome (not proven): a live member removed with force is not pulled "
        "from; it loses every range at the remove entry and hands each off to its new "
        "replicas before dropping it (an in-process run: a key only it held was on all three "
        "new replicas when the removal finished)",
    f"{_TM}resume__mutmut_1": "equivalent: replaying is only tested for truth",
    f"{_TM}resume__mutmut_5":
        "equivalent in outcome: a node outside the ring at start-up (removed while down, or "
        "not yet bootstrapped) hands off and drops what it holds, as its removal did",
    f"{_TM}resume__mutmut_13":
        "cost: every held range is handed off too at start-up (replicas get only what they "
        "lack); the drop keeps what the node still replicates (it recomputes with its id)",
    f"{_TM}on_state_change__mutmut_10":
        "cost: stale transfer state is also cleared after entries that start or end no change",
    f"{_TM}on_state_change__mutmut_14":
        "timing: an abandoned change's state is cleared at the next entry of the change that "
        "replaced it (a stale marker never vouches: is_done checks the change is in progress)",
    f"{_TM}on_state_change__mutmut_15":
        "timing: the tasks of an ended change are not cancelled; each returns at its next "
        "step (the pull checks _in_progress, the driver the change)",
    f"{_TM}on_state_change__mutmut_17":
        "cost: with no change in progress, an empty transfer is started once (nothing to "
        "pull, nothing to drive)",
    f"{_TM}is_done__mutmut_11":
        "cost: a member that gains nothing is not done at once; its _pull_all writes the "
        "done marker at once (no source), and the driver asks only gainers",
    f"{_TM}_in_progress__mutmut_3":
        "equivalent: at epoch == change_epoch the change's own entry is the last applied, so "
        "the change is in progress",
    f"{_TM}_is_driver__mutmut_3":
        "equivalent in outcome: the lowest-numbered live member drives a join instead of the "
        "joiner, the same way (asks the gainers, proposes finish_join)",
    **{f"{_TM}_is_driver__mutmut_{i}":
       "equivalent in outcome (not proven): a down lowest-numbered member is still named the "
       "driver of a removal; with Q partitions spread out it gains from the removal too (so "
       "in all 33 removals from default rings of 4-9 members), so the removal waits for it "
       "anyway, and it drives once it is back" for i in (11, 16)},
    f"{_TM}_is_driver__mutmut_19":
        "equivalent in outcome: the second-lowest live member drives a removal instead (one "
        "driver; a removal commits only with a live majority, so there are two)",
    f"{_TM}_drive__mutmut_4":
        "equivalent in outcome: an ended change's driver stops by an exception instead of "
        "returning; one replaced by a new change asks with the old epoch, which is never "
        "done, and a finish naming it would be refused",
    **{f"{_TM}_drive__mutmut_{i}": "text: the driver's finished and failed log lines"
       for i in range(36, 54)},
    f"{_TM}_pull_from__mutmut_85":
        "equivalent: msgpack's packb default is use_bin_type=True",
    **{f"{_TM}rpc_pull__mutmut_{i}":
       "timing: a source behind the change catches up anyway (pings carry the gainer's "
       "epoch, and the Paxos node fills a gap itself); the gainer retries meanwhile"
       for i in (3, 4, 5, 6)},
    f"{_TM}rpc_pull__mutmut_7":
        "text: the refusal's epoch; the gainer (ahead of this source) retries whatever it says",
    f"{_TM}rpc_pull__mutmut_23":
        "equivalent: last is returned only with a non-empty batch, after a record set it",
    f"{_TM}_pull_from__mutmut_33":
        "timing: a source down for exactly the 5 s grace is skipped one retry earlier",
    **{f"{_TM}_pull_from__mutmut_{i}": "text: the skip and retry log lines"
       for i in (*range(34, 42), *range(63, 71))},
    **{f"{_TM}_pull_from__mutmut_{i}":
       "buggify only: the simulator's one-record-chunk knob (off in production and in these "
       "tests)" for i in (44, 46, 47, 48, 49, 50)},
    f"{_TM}_pull_from__mutmut_62":
        "timing: a pull call's bound 11 s instead of 10 s; a failed call is retried either way",
    f"{_TM}_drop_lost_ranges__mutmut_14":
        "cost: ranges given back meanwhile are handed off too; the hand-off gives the "
        "current replicas only what they lack (newest wins)",
    f"{_TM}_drop_lost_ranges__mutmut_28":
        "cost: an empty drop is one more call that returns 0 at once",
    **{f"{_TM}_drop_lost_ranges__mutmut_{i}": "text: the drop's log line (its count)"
       for i in range(30, 37)},
}
# ---- storage/group_commit.py: the range drop in steps (session 9, commit abf009e) --------
# Judged against tests/unit/test_range_drop.py test_group_commit.py test_storage.py
# test_group_commit_sizes.py test_sync_stalls.py test_anti_entropy.py test_transfer.py.
_GC = "dynamopy.storage.group_commit.xǁGroupCommitterǁ"
_DROP = "dynamopy.storage.group_commit.xǁ_Dropǁ"
_ST = "dynamopy.storage.store.xǁStoreǁ"
_STORAGE_EQUIVALENT = {
    **{f"{_DROP}note_writes__mutmut_{i}":
       "cost: keep also holds keys no step visits (in a finished range, in a gap between "
       "ranges, before the first or at a range's exclusive end); a step only tests the keys "
       "it meets" for i in (9, 11)},
    f"{_DROP}step__mutmut_13": "equivalent: delete_range_chunk's sync defaults to True",
    f"{_DROP}step__mutmut_23":
        "cost: an empty range takes a step of its own (no write) and a chunk whose records "
        "are all kept does not end the step; the same records are deleted",
    f"{_DROP}step__mutmut_24":
        "metrics: a step that met only empty ranges reports 1 record to on_batch; the drop's "
        "count is its total, not the step results",
    **{f"{_GC}delete_ranges_in_order__mutmut_{i}": "text: the refusal's message"
       for i in (2, 3, 4, 5, 19)},
    **{f"{_GC}delete_ranges_in_order__mutmut_{i}":
       "equivalent: the drop's submission never joins a batch of writes (_take_batch and "
       "_more stop at it; its steps go through _Drop), so its empty lists are never read"
       for i in range(24, 29)},
    f"{_GC}_run__mutmut_47":
        "equivalent: _accepting (and running) are only tested for truth: None is as false "
        "as False",
    f"{_GC}_run__mutmut_54":
        "unreachable: after the task ended nothing reads _drop (stop() only awaits the task; "
        "a restarted node builds a new committer)",
    **{f"{_GC}_run__mutmut_{i}": "text: CommitterClosed's message" for i in (57, 58, 59)},
    **{f"{_GC}_fail__mutmut_{i}": "text: the failure's log line" for i in (9, 13)},
    f"{_GC}_returned__mutmut_1":
        "equivalent: _in_flight is only tested for truth: None is as false as False",
    # the rest of group_commit.py (first run: the functions the drop did not change)
    **{f"{_GC}_take_batch__mutmut_{i}":
       "equivalent: _drop_next is only tested for truth: None is as false as False"
       for i in (20,)},
    **{f"{_GC}{name}":
       "equivalent with buggify off (BUGGIFY_OFF.fires is always False); with it on (the "
       "simulator only) the split knob is consulted or fires more often: smaller batches, "
       "the same results" for name in ("_take_batch__mutmut_25", "_more__mutmut_2")},
    **{f"{_GC}_resolve__mutmut_{i}":
       "equivalent: a drop's submission never reaches this loop (its steps return above), "
       "so delete_ranges is always empty here" for i in (18, 20)},
    f"{_GC}_batch_done__mutmut_1":
        "text: a batch of exactly SLOW_SYNC_SECONDS (a float duration) is not logged",
    **{f"{_GC}_batch_done__mutmut_{i}": "text: the callback failure's log line"
       for i in (11, 12, 13)},
    **{f"{_GC}{name}__mutmut_1":
       "equivalent: only tested for truth: None is as false as False"
       for name in ("_dispatch",)},
    **{f"{_GC}_notify__mutmut_{i}":
       "cost: more _dispatch calls scheduled in one loop step; the first hands over the "
       "batch, the others find it in flight and return" for i in (2, 5, 6)},
    f"{_GC}_thread_main__mutmut_2":
        "equivalent: both are set by start() before the thread runs",
    f"{_GC}_thread_main__mutmut_8":
        "equivalent: return inside the try runs the same finally as break",
    **{f"{_GC}_thread_main__mutmut_{i}":
       "equivalent: a failed batch's seconds are not read (_returned fails it)"
       for i in (18, 25, 32, 39)},
    f"{_GC}_thread_main__mutmut_26":
        "equivalent: _accepting is only tested for truth: None is as false as False",
    f"{_GC}_thread_main__mutmut_40": "text: CommitterClosed's message",
    f"{_GC}_returned__mutmut_23":
        "text: the queued callers still fail with CommitterClosed, another message",
    **{f"{_GC}_returned__mutmut_{i}":
       "unreachable: the thread posts an exception with every batch it fails on its way "
       "out, so exc is set whenever _broken is" for i in (24, 25, 26)},
    **{f"dynamopy.storage.group_commit.x__apply_merged__mutmut_{i}":
       "cost: store.apply checks the batch's input again (check=True is its default); "
       "every caller's was checked at submission" for i in (40, 42)},
    "dynamopy.storage.group_commit.x__apply_merged__mutmut_33":
        "equivalent: check is only tested for truth: None is as false as False",
    **{f"{_GC}{fn}__mutmut_{i}": "text: the refusal's message"
       for fn, nums in (("write_into", (2, 3, 4, 5)), ("submit_nowait", range(2, 9)),
                        ("delete_range", (2, 3, 4, 5))) for i in nums},
    f"{_GC}write_into__mutmut_19":
        "equivalent: delete_ranges is only tested for truth: None is as empty as []",
    f"{_GC}_log_slow__mutmut_5":
        "text: a slow batch exactly SLOW_SYNC_LOG_EVERY after the last line is counted for "
        "the next line instead of logged",
    f"{_GC}_log_slow__mutmut_24": "text: the logged milliseconds 0.1% high",
    f"{_GC}__init____mutmut_1": "cost: batches of up to 1001 operations instead of 1000",
    **{f"{_GC}__init____mutmut_{i}": "text: the ValueError's message" for i in (5, 6, 7)},
    **{f"{_GC}__init____mutmut_{i}":
       "equivalent: start() sets it before anything reads it" for i in (15, 16, 33)},
    **{f"{_GC}__init____mutmut_{i}":
       "equivalent: only tested for truth: None is as false as False"
       for i in (18, 22, 24, 26, 29, 31)},
    f"{_GC}__init____mutmut_35":
        "equivalent: read only after the first slow line, which sets it to 0",
    **{f"{_GC}__init____mutmut_{i}":
       "equivalent: start() resets it (thread) or nothing reads it (inline); _drop_next is "
       "set when a drop reaches the head of the queue, before it is read" for i in (27, 30, 32)},
    **{f"{_GC}start__mutmut_{i}": "text: the RuntimeError's message" for i in (4, 5, 6, 7)},
    **{f"{_GC}start__mutmut_{i}": "text: the task's or thread's name (debugging only)"
       for i in (16, 18, 19, 20, 26, 29, 31, 32)},
    f"{_GC}start__mutmut_21": "equivalent: only tested for truth: None is as false as False",
    **{f"{_GC}stop__mutmut_{i}": "equivalent: only tested for truth: None is as false as False"
       for i in (2, 10)},
    # storage/store.py's range delete (run with --only for the two functions)
    **{f"{_ST}delete_range__mutmut_{i}":
       "cost: each chunk re-reads the range from its start (the records deleted before are "
       "gone), or with another chunk size; the same records deleted and counted"
       for i in (2, 13, 18, 19)},
    f"{_ST}delete_range__mutmut_20":
        "cost: every chunk synced, also for a caller that asked sync=False",
    **{f"{_ST}delete_range_chunk__mutmut_{i}":
       "equivalent: a default every caller overrides (delete_range and _Drop.step pass "
       "chunk and sync)" for i in (1, 2)},
    f"{_ST}delete_range_chunk__mutmut_7":
        "equivalent: for start == end the iterator over [bound, bound) is empty: (0, None)",
    **{f"{_ST}delete_range_chunk__mutmut_{i}": "text: the closed store's message"
       for i in (16, 17, 18)},
    f"{_ST}delete_range_chunk__mutmut_24":
        "equivalent: last is read only after seen >= chunk >= 1, when a key has set it",
    f"{_ST}delete_range_chunk__mutmut_43":
        "equivalent: int.from_bytes's byteorder defaults to 'big' (Python >= 3.11, "
        "requires-python)",
}

EQUIVALENT = {
    "dynamopy.core.records.x_newest__mutmut_6":
        "ties: versions are unique per write, so equal versions are the same record",
    "dynamopy.core.versions.xǁHybridClockǁobserve__mutmut_1":
        "observe(0): (0, 0) never exceeds a clock's state; adopting it changes nothing",
    "dynamopy.core.versions.xǁHybridClockǁobserve__mutmut_2":
        "observe(1): (ms, counter) = (0, 0), as for observe(0)",
    "dynamopy.core.versions.xǁHybridClockǁobserve__mutmut_5":
        "adopting an equal (ms, counter) leaves the state as it was",
    "ring.hashing.x_key_bytes__mutmut_3": "'UTF-8' and 'utf-8' name the same codec",
    "ring.hashing.x_key_token__mutmut_3": "signed=None is falsy: the same unsigned hash",
    "ring.ring.xǁRingǁtoken__mutmut_3": "signed=None is falsy: the same unsigned hash",
    "ring.ring.xǁRingǁpreference_list__mutmut_10": "signed=None is falsy: the same hash",
    "ring.ring.xǁRingǁpreference_list__mutmut_13":
        "mmh3 is signed by default: (t - 2**32) >> shift is p - Q, and table[p - Q] is table[p]",
    "ring.ring.xǁRingǁpreference_list__mutmut_15":
        "signed: (t - 2**32) >> shift is p - Q, and table[p - Q] is table[p] (Q entries)",
    "ring.ring.xǁRingǁpreference_list__mutmut_1": "a cache miss recomputes the same table",
    "ring.ring.xǁRingǁpreference_list__mutmut_2": "a cache miss recomputes the same table",
    "ring.ring.xǁRingǁ_table__mutmut_1": "a cache miss recomputes the same table",
    **{f"ring.ring.xǁRingǁranges_of__mutmut_{i}":
       "a cache miss recomputes the same ranges (session 4 re-run of the cached functions)"
       for i in (1, 2)},
    "ring.ring.xǁRingǁ_walk_from__mutmut_3":
        "without the early exit the walk meets no new member after the last one",
    "ring.ring.xǁRingǁ__eq____mutmut_13": "equal partition counts returned earlier",
    "ring.ring.xǁRingǁ__hash____mutmut_1": "a constant hash is consistent with __eq__",
    "ring.ring.xǁRingǁ_table__mutmut_2": "a cache miss recomputes the same table",
    "ring.hashing.x_rank__mutmut_7": "signed=None is falsy: the same unsigned hash",
    "ring.hashing.x_rank__mutmut_13": "'UTF-8' and 'utf-8' name the same codec",
    "ring.ring.x__check_settings__mutmut_11":
        "the assert restates types the loop above already enforced (it only informs mypy)",
    "ring.ring.x__check_settings__mutmut_12":
        "the assert restates types the loop above already enforced (it only informs mypy)",
    "dynamopy.core.paxos.acceptor.xǁAcceptorStateǁapply__mutmut_7":
        "adopting an equal compacted_below leaves it as it was",
    "dynamopy.core.paxos.acceptor.xǁAcceptorStateǁapply__mutmut_14":
        "adopting an equal promised ballot leaves it as it was (ballots compare by value)",
    **{f"dynamopy.core.paxos.acceptor.xǁAcceptorǁ{name}__mutmut_{i}":
       "the dirty flags are only tested for truth: None is as false as False"
       for name, i in (("__init__", 8), ("__init__", 10), ("__init__", 13), ("take_update", 19),
                       ("take_update", 21), ("take_update", 24))},  # re-judged this session
    "dynamopy.core.paxos.learner.xǁLearnerǁlearn__mutmut_13":
        "slot + 2 > hint adds only the case hint == slot + 1, where hint = slot + 1 changes nothing",
    "dynamopy.core.paxos.learner.xǁLearnerǁlearn__mutmut_14":
        "raising the hint to an equal value changes nothing",
    "dynamopy.core.paxos.learner.xǁLearnerǁinstall__mutmut_12":
        "raising the hint to an equal value changes nothing",
    "dynamopy.core.paxos.learner.xǁLearnerǁabsorb__mutmut_1":
        "None for False: absorb's result is only tested for truth (node._on_catchup_reply)",
    **{f"dynamopy.core.paxos.proposer.xǁProposerǁ__init____mutmut_{i}":
       "set by start_candidacy or become_leader before it is first read"
       for i in (10, 11, 12, 14, 15)},
    # (this session's re-run of the proposer after the reconfiguration changes)
    **{f"dynamopy.core.paxos.proposer.xǁProposerǁ__init____mutmut_{i}":
       "set by start_candidacy before it is first read" for i in (5, 6, 8, 9)},
    "dynamopy.core.paxos.proposer.xǁProposerǁstep_down__mutmut_3":
        "reset by start_candidacy before it is read again",
    "dynamopy.core.paxos.proposer.xǁProposerǁopen_slots__mutmut_25": "NOOP is None",
    "dynamopy.core.paxos.proposer.xǁProposerǁon_promise__mutmut_14":
        "one ballot proposes one value per slot: equal ballots report the same value",
    "dynamopy.core.paxos.proposer.xǁProposerǁbecome_leader__mutmut_13":
        "one ballot proposes one value per slot: equal ballots report the same value",
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ_lost_quorum__mutmut_{i}":
       "the grace period is redundant: the majority's promises count as acks at leader_since"
       for i in (1, 2)},
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_heard_from_leader__mutmut_10":
        "ballots are unique per proposer: a leader never hears another leader at its own ballot",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_on_nack__mutmut_9":
        "unreachable: an acceptor nacks only a ballot below its promise (promised > ballot)",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_note_round__mutmut_1":
        "raising the highest round seen to an equal value changes nothing",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_start_election__mutmut_2":
        "the assert only informs mypy: elections run only on acceptors (proposer and acceptor)",
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ_start_election__mutmut_{i}":
       "unreachable: a leader never starts an election (tick runs it for followers and "
       "candidates), and a follower's silent leader is dropped later in the same tick"
       for i in (24, 25)},
    "ring.claim.x_initial_owners__mutmut_8":
        "the not-yet-dealt mark is compared with member indexes only: -2 is as unequal as -1",
    "ring.claim.x_initial_owners__mutmut_11":
        "counts only order the wrap-around fallback: +1 for every member keeps the order",
    "ring.claim.x_initial_owners__mutmut_97":
        "counts only order the wrap-around fallback: doubling every count keeps the order",
    "ring.claim.x_claim_for_joiner__mutmut_69":
        "the blocked window -(spread-1)..spread-1 is symmetric: p - d marks the same partitions",
    "ring.claim.x_claim_for_joiner__mutmut_70": "blocked is only tested for truth: 2 is as true as 1",
    "ring.claim.x_claim_for_joiner__mutmut_104":
        "best stays negative until a partition is found, and only best >= 0 is taken",
    "ring.claim.x_release_leaver__mutmut_21":
        "counts are integers: count >= size / heirs exactly when count >= ceil(size / heirs)",
    "ring.claim.x_release_leaver__mutmut_41":
        "not proven: +1 on every load shifts every projected load alike (it weighs only the "
        "leaver's other partitions in a walk); no difference in 1170 leave sequences",
    "ring.claim.x_release_leaver__mutmut_57":
        "output unchanged: walks that do not reach p get a zero delta; only O(Q) slower (timeout)",
    "ring.claim.x_release_leaver__mutmut_60":
        "one more walk, whose first spread members come before p: unchanged, zero delta",
    "ring.claim.x_release_leaver__mutmut_67":
        "a survivor below the cap always exists (heirs * cap >= Q): best_heir is always replaced",
    "ring.claim.x_release_leaver__mutmut_68":
        "a survivor below the cap always exists (heirs * cap >= Q): best_heir is always replaced",
    "ring.claim.x_release_leaver__mutmut_102":
        "the leaver owns p, so it is in every old walk reaching p: the key is always there",
    "ring.claim.x_release_leaver__mutmut_137":
        "scores end with a per-heir hash: two heirs never tie, so < and <= pick the same heir",
    "ring.claim.x_release_leaver__mutmut_155":
        "every freed partition gets an heir: no owner equals the leaver at the end",
    # -- dynamopy/core/records.py
    "dynamopy.core.records.x_record_wire_bytes__mutmut_4":
        "an upper estimate one byte looser is still one (the item's envelope is ~35 bytes)",
    # -- dynamopy/core/versions.py
    "dynamopy.core.versions.x_resume_floor__mutmut_7":
        "observe() reads only (ms, counter): the floor's member number is never looked at",
    # -- dynamopy/core/paxos/node.py (this session's re-run)
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_lost_quorum__mutmut_6":
        "unreachable: every learned slot is followed by _scan_groups, which steps a leader "
        "down as soon as the group of its frontier leaves it out",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁtick__mutmut_21":
        "timing: a candidate still resends its prepare every heartbeat_ticks, at another "
        "phase of its candidacy (session 4: the other 33 tick mutants are killed)",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_maybe_catch_up__mutmut_16":
        "random() returns exactly 0.5 with probability ~2**-53: < and <= pick alike",
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ__init____mutmut_{i}":
       "never read: only acceptors campaign, and a node not listed becomes one only by "
       "re-admission, which needs a ballot_id" for i in (58, 59)},
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ__init____mutmut_{i}": reason
       for i, reason in (
           (98, "_peers is assigned by _refresh_peers before anything reads it"),
           (104, "_start_election takes the max with the acceptor's promised round anyway"),
           (106, "a non-acceptor never campaigns; re-admitted, its first ballot is round 2 "
                 "instead of 1: still above every round seen, as the rule asks"),
           (111, "read only while a leader is known, and every assignment of one sets it"),
           (113, "set by _start_election before it is read (candidates only)"),
           (114, "set by _start_election before it is read (candidates only)"),
           (115, "set by _become_leader before it is read (leaders only)"),
           (116, "set by _become_leader before it is read (leaders only)"),
           (117, "set by _heartbeat in _become_leader before it is read (leaders only)"),
           (118, "set by _heartbeat in _become_leader before it is read (leaders only)"),
           (119, "set by _become_leader before it is read (leaders only)"),
           (121, "the first catch-up check is at tick 1 (tick counts first): 1 < 1 is false"),
           (86, "without reconfig no change is ever recorded: the schedule's alpha is unused"),
           (123, "the first poll check is at tick 1 (tick counts first): 1 >= 1 either way"),
           (126, "_in_ready is only tested for truth: None is as false as False"),
           (128, "set by ready() before advance() reads it (advance without ready raises)"),
           (129, "set by ready() before advance() reads it (advance without ready raises)"))},
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_scan_groups__mutmut_4":
        "changed is only tested for truth: None is as false as False",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_scan_groups__mutmut_5":
        "pruning when nothing changed forgets only groups of slots below chosen_below, "
        "which group_of_slot is not exact for anyway",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_limit__mutmut_3":
        "without group changes the bound only has to exceed every slot: 2**62 or 2**63",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_limit__mutmut_4":
        "without group changes the bound only has to exceed every slot: 2**62 or 2**63",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁadvance__mutmut_5":
        "_in_ready is only tested for truth: None is as false as False",
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_on_commit__mutmut_2":
        "after a Commit that taught nothing, _after_learning finds no change to scan, no "
        "in-flight slot to forget and no new room in the window (only learning frees it)",
    # -- dynamopy/core/placement.py
    **{f"dynamopy.core.placement.x_lost_ranges__mutmut_{i}":
       "the ring changes only at bootstrap (nothing was held before) or when a change "
       "finishes (the pending ring changes with it): the shortcut's answer is the same"
       for i in (2, 5)},
    "dynamopy.core.placement.x_lost_ranges__mutmut_13": "subtracting from no spans gives none",
    "dynamopy.core.placement.x_subtract_sorted__mutmut_7":
        "a cut ending where the span starts covers none of it: skipped or not, same output",
    "dynamopy.core.placement.x_subtract_sorted__mutmut_15":
        "a cut starting where the span ends: the last piece is appended in the loop, not after",
    "dynamopy.core.placement.x_merge_spans__mutmut_8":
        "extending a span to the end it already has changes nothing",
    # -- dynamopy/core/merkle.py
    "dynamopy.core.merkle.x_record_hash__mutmut_2": "signed=None is falsy: the same unsigned hash",
    "dynamopy.core.merkle.x_record_hash__mutmut_10": "int.to_bytes is big-endian by default",
    "dynamopy.core.merkle.xǁHashTreeǁupdate__mutmut_4": "delta is 0 before: 0 ^ h == h",
    "dynamopy.core.merkle.xǁHashTreeǁcover__mutmut_29":
        "unreachable: a leaf (level 0) always fits (pos and end are on leaf boundaries and "
        "pos < end), so the loop never gets to level -1",
    "dynamopy.core.merkle.xǁTreeWalkǁreceive__mutmut_2": "text: the ValueError's message",
    "dynamopy.core.merkle.xǁHashTreeǁ__init____mutmut_17":
        "cost: every level's array twice as long; the upper half is never indexed",
    "dynamopy.core.merkle.x_intersect_spans__mutmut_23":
        "on equal ends either side may advance first: the other's next span starts at or "
        "after that end, so it overlaps nothing before the other side advances too",
    # -- dynamopy/core/clock_offsets.py (re-run after the fence rewrite; session 4)
    **{f"dynamopy.core.clock_offsets.xǁPeerOffsetsǁestimate__mutmut_{i}":
       "never read: a corrected estimate's at_s and drift_ms (the fence and the detector read "
       "its offset and round trip only)" for i in (23, 24, 27, 28)},
    "dynamopy.core.clock_offsets.xǁPeerOffsetsǁforget__mutmut_6":
        "equivalent: sample() records a peer's word with its samples, so a forgotten peer "
        "always has one to pop",
    "dynamopy.core.clock_offsets.xǁClockFenceǁjudge__mutmut_28":
        "text: a verdict's reason is read only when it is skewed, and every skewed verdict "
        "names its own",
    "dynamopy.core.clock_offsets.xǁClockFenceǁjudge__mutmut_38":
        "never read: SkewVerdict.peers (the detector and /cluster read skewed, offset, far, "
        "measured, checked and reason)",
    **{f"dynamopy.core.clock_offsets.xǁClockFenceǁjudge__mutmut_{i}":
       "unreachable in a node: the bound is the process's --max-clock-offset-ms, fixed for "
       "its life, and with the fence off the anchor is only tested for presence"
       for i in (52, 53, 54, 58, 59)},
    **{f"dynamopy.core.clock_offsets.xǁClockFenceǁjudge__mutmut_{i}":
       "equivalent: skewed is only tested for truth (the detector, the metric, /cluster's "
       "bool()), and checked is the same for None as for False" for i in (60, 88, 119, 144)},
    "dynamopy.core.paxos.messages.x_encode__mutmut_12":
        "equivalent: a zero votes_from sent explicitly decodes to the same Promise as the "
        "short form",
    # -- dynamopy/core/paxos/ready.py (session 4)
    **{f"dynamopy.core.paxos.ready.x_finish_ready__mutmut_{i}": "text: the ValueError's message"
       for i in (3, 4, 5, 6)},
    "dynamopy.core.paxos.ready.x_finish_ready__mutmut_13":
        "equivalent: advance() does not read the Ready it is given (it ends the one ready() "
        "handed out)",
    # -- dynamopy/core/paxos/groups.py
    "dynamopy.core.paxos.groups.xǁGroupScheduleǁat__mutmut_1":
        "every schedule's first change is from slot 0: the first iteration sets the group",
    # -- dynamopy/core/cluster_identity.py (after the session-5 merges)
    "dynamopy.core.cluster_identity.x_cluster_id__mutmut_3":
        "equivalent: the separator only changes which id a set of store tokens hashes to; "
        "the id is computed once (bootstrap_entry, the same code on every seed), then read "
        "from slot 0 or a snapshot and only compared for equality",
    "dynamopy.core.cluster_identity.x_cluster_id__mutmut_6":
        "text: the id is 17 hex digits instead of 16; nothing parses it, it is only "
        "compared for equality (node/metalog, node/runtime) and shown",
    # -- dynamopy/core/tombstones.py (after the session-5 merges)
    **{f"dynamopy.core.tombstones.x_min_grace_s__mutmut_{i}":
       "cost: the loop climbs 1 ms at a time to the least covering grace from any first "
       "guess at or below it; these guesses are lower (or, with a zero clock bound, at most "
       "(window + 1)/0.9 - 1 ms, still below the least, window/0.9)" for i in (8, 15, 17)},
    **{f"dynamopy.core.tombstones.x_seconds_text__mutmut_{i}":
       "equivalent: stripping the characters of 'XX0XX' / 'XX.XX' from a formatted number "
       "strips what '0' / '.' do (it holds no X)" for i in (5, 6)},
    # -- dynamopy/core/paxos/node.py, the identity functions (after the session-5 merges;
    # the __init__ entries above were re-checked: their numbers name the same mutants)
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ__init____mutmut_{i}":
       "equivalent: cluster_known / disowned are only tested for truth (here, node/metalog, "
       "node/runtime, node/bootstrap): None is as false as False" for i in (133, 135)},
    "dynamopy.core.paxos.node.xǁMetaLogNodeǁ_learn_identity__mutmut_7":
        "equivalent: slot 0 is in the learned log only with a base of 0, and then learning it "
        "moves chosen_below past it (Learner.learn), so chosen_below > 0 already",
    **{f"dynamopy.core.paxos.node.xǁMetaLogNodeǁ_learn_identity__mutmut_{i}":
       "unreachable: a learner holds a snapshot exactly when its base is above 0 (compact "
       "and install take only snapshots of a slot above the base; none is ever of slot 0)"
       for i in (12, 14)},
    # -- core/metadata_group.plan_group's odd-size rule (after the session-5 merges;
    # renumbered from 98, 100, 101 when the trim moved to _pick in session 6)
    **{f"{_MG}plan_group__mutmut_{i}":
       "equivalent: every member the plan keeps is a member (the current ones passed unfit, "
       "the others are picked from state.members), so the -1 for a non-member is never used"
       for i in (100, 102, 103)},
    # (core.membership._leave's unreachable state check, listed here before, was deleted in
    # session 5; membership was re-run and re-judged then, in _CORE_SESSION5.)
    **_NODE_EQUIVALENT,
    **_STORAGE_EQUIVALENT,
}
