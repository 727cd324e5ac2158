"""The tasks: the games, their oracles and knowledge bases, their scripted players and datasets.

Nothing outside this folder imports these modules but envs.py, the one door (envs.make(name),
envs.play, the dataset command line); nothing in here imports anything above it.

    dialogue.py          the question games' shape, a scripted questioner, LMRL-Gym datasets
    twenty_questions.py  Twenty Questions (157 objects) and its 10-object subset; data/twenty_questions_objects.json
    guess_city.py        Guess My City (99 cities): the game; city_oracle.py answers, city_facts.py
                         reads data/cities.json, which build_cities.py builds from GeoNames and friends
    textgame.py          Detective and any z-machine or TextWorld game, through Jericho
    webshop.py           WebShop: a local generated shop; webshop_pages.py renders its pages,
                         webshop_server.py plays a real WebShop server through the same pages
    game_data.py         datasets of the games that are not question games
"""
# How the text games and WebShop learn their game file / server: they read these where they are
# built (envs.make takes no paths), so a training script's --game_file reaches every copy it makes.
GAME_FILE_VAR = "MINARCHER_GAME_FILE"
WEBSHOP_SERVER_VAR = "MINARCHER_WEBSHOP_SERVER"
