#include "counters.h"

cb_counters cb_ctr;
