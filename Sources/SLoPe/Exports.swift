// Users import SLoPe and get the tensor core with it.
@_exported import SlopeCore
