"""``Columns``: the names of the batch and forward-output fields modules read and write."""


class Columns:
    OBS = "obs"
    NEXT_OBS = "new_obs"
    ACTIONS = "actions"
    REWARDS = "rewards"
    TERMINATEDS = "terminateds"
    TRUNCATEDS = "truncateds"
    ACTION_DIST_INPUTS = "action_dist_inputs"
    ACTION_LOGP = "action_logp"
    VF_PREDS = "vf_preds"
    ADVANTAGES = "advantages"
    VALUE_TARGETS = "value_targets"
    EMBEDDINGS = "embeddings"
    #: an int64 per step naming its (agent's) episode, unique across runners: replay buffers
    #: chain a step to the next one of the same episode with it (n-step returns)
    EPS_ID = "eps_id"
