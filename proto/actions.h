/* actions.h — the names the contract gives actions and sides, in one place
 * (the schemas' enums say the same; test_event checks they agree).
 *
 * RL actions are indexed as the PPO policy's outputs (libcommon/model.h):
 * FLAT, LONG_SMALL, LONG_LARGE, SHORT_SMALL, SHORT_LARGE, HOLD. */
#ifndef QT_PROTO_ACTIONS_H
#define QT_PROTO_ACTIONS_H

#define PROTO_RL_ACTIONS 6
extern const char *const proto_rl_actions[PROTO_RL_ACTIONS];

/* The name of RL action i ("HOLD" for an index out of range). */
const char *proto_rl_action_name(int i);
/* The index of an RL action's name, -1 when it is none. */
int proto_rl_action_index(const char *name);

/* The ensemble's actions (signal.generated, model votes). */
#define PROTO_ENS_LONG "LONG"
#define PROTO_ENS_SHORT "SHORT"
#define PROTO_ENS_HOLD "HOLD"
/* Order sides (trade.intent, trade.executed). */
#define PROTO_SIDE_BUY "BUY"
#define PROTO_SIDE_SELL "SELL"

#endif
