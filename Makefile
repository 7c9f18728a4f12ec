# Thin wrappers over dev.py (which needs only Python).
.PHONY: app test bench quality demo lint
app: ; python3 dev.py app
test: ; python3 dev.py test
bench: ; python3 dev.py bench
quality: ; python3 dev.py quality
demo: ; python3 dev.py demo
lint: ; python3 dev.py lint
