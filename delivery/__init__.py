"""Request services between the HTTP/GraphQL edge and the domain packages.

The services container, API keys, page delivery (each page decided once per
request, with the cache policy its decisions imply), previews and request
facts. Nothing here knows HTTP or GraphQL types: the edge (`gateway/`) and
the resolvers (`resolvers/`) both call in.
"""
