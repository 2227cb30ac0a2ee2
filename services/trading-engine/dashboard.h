/* dashboard.h — the web dashboard's page and where it finds the other
 * services (see dashboard.c). */
#ifndef QT_DASHBOARD_H
#define QT_DASHBOARD_H

#include "httpd.h"

/* GET / and /api/v1/dashboard/config. -1 when a route cannot be added. */
int dashboard_routes(httpd_t *h);

#endif
