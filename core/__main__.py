from gigapatch.cli import console

console()
