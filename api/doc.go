// Package api owns rackboot's HTTP API under /api/: the agent API, through
// which an installer agent fetches its plan and reports progress, log lines
// and its result with its install token, and the admin API behind the
// command-line tools (hosts, history, versions, reinstall, logs, live
// events), guarded by the admin token.
//
// The agent API's wire types are package agentapi's. The plan itself
// comes through Planner, which the daemon's wiring implements (profiles'
// plan completed with the image's URL and sizes).
//
// States and history live in package registry; this package only speaks
// HTTP and JSON. Progress reports are not stored: they go to live
// subscribers (Events) and to the latest-progress table the host views
// show, so an agent reporting every second costs no disk write.
package api
