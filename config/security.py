"""Response headers that keep patient data out of browser and proxy caches."""

NO_STORE = "no-store"


class NoStoreMiddleware:
    """Send Cache-Control: no-store with every response a view produced.

    Almost every page of the portal shows patient data or depends on who is
    logged in, so no browser, back button or shared proxy should keep a copy.
    A view that sets its own Cache-Control keeps it. Static files never reach
    this middleware, because WhiteNoise, listed before it, serves them with
    their own long-lived caching headers.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = NO_STORE
        return response
