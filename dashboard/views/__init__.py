"""Dashboard pages: server-rendered, every write through the owning app's service (never a raw model edit).

Actions are plain POST forms answered by a redirect (post/redirect/get); an ApplicationError from a service
becomes a flash message on the page redirected to. htmx only refreshes fragments (tables) in place when the
event stream (`/events`) says something changed, and every page works without JavaScript.
"""
