# mutant: the wrong answer to the multiple-choice question ("learned features need no labelled data")
# replaces: answer
# caught-by: test_question
answer = "A"
