"""`cosmos ui`: the local web app (Starlette, served by uvicorn) over CosmosAPI."""
