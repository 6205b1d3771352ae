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
    #: a recurrent module's state (a dict of arrays) going into / coming out of a forward pass
    STATE_IN = "state_in"
    STATE_OUT = "state_out"
    #: per step: the value of ``new_obs`` where a chain of steps is cut short (truncated
    #: episode, end of a fragment piece), recorded by the EnvRunner for recurrent modules
    VALUES_BOOTSTRAPPED = "values_bootstrapped"
    #: per step: the previous step's action / reward in the episode (zeros at its first step),
    #: recorded by the EnvRunner for an LSTM built with lstm_use_prev_action / lstm_use_prev_reward
    #: (the names of Ray's SampleBatch.PREV_ACTIONS / PREV_REWARDS)
    PREV_ACTIONS = "prev_actions"
    PREV_REWARDS = "prev_rewards"
    #: per step of a padded sequence: True on real steps, False on padding
    LOSS_MASK = "loss_mask"
