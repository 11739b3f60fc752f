"""Request and response bodies of the API, one module per router (same stems as
``api/routers``). Serialisation of domain objects for the API lives only here."""
