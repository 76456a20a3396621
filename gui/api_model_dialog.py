"""Set up the API model the Chat page compares with: any OpenAI-compatible endpoint. The key goes to the system
keyring, never to a file LlamaDesk writes in plain text (unless no keyring exists, and then the user is told)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from engine.light import api_chat, secret_store
from engine.light.api_chat import Endpoint
from gui.widgets.dialogs import warn
from gui.widgets.labels import add_row, plain_label

PRESETS = (  # (label, base URL, a model name to start from)
    ("OpenAI", "https://api.openai.com/v1", "gpt-4o-mini"),
    ("Ollama on this computer", "http://localhost:11434/v1", "llama3.2"),
    ("llama.cpp server on this computer", "http://127.0.0.1:8080/v1", "model"),
    ("vLLM on this computer", "http://127.0.0.1:8000/v1", "model"),
)


class ApiModelDialog(QDialog):
    def __init__(self, endpoint: Endpoint | None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("API model")
        self.endpoint: Endpoint | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(plain_label("Any server that speaks OpenAI's chat API: OpenAI itself, or Ollama, llama.cpp "
                                     "or vLLM on this computer or another."))
        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(["Custom"] + [label for label, _, _ in PRESETS])
        self.preset.currentIndexChanged.connect(self._on_preset)
        self.url = QLineEdit(endpoint.base_url if endpoint else PRESETS[0][1])
        self.url.setPlaceholderText("https://api.openai.com/v1")
        self.model = QLineEdit(endpoint.model if endpoint else PRESETS[0][2])
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 600)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(endpoint.timeout_s if endpoint else api_chat.DEFAULT_TIMEOUT_S)
        add_row(form, "Preset", self.preset)
        add_row(form, "Base URL", self.url)
        add_row(form, "Model", self.model)
        add_row(form, "API key", self.key)
        add_row(form, "Timeout", self.timeout)
        layout.addLayout(form)
        self.where = plain_label()
        self.where.setObjectName("pagePurpose")
        layout.addWidget(self.where)
        self.problem = plain_label()
        self.problem.setObjectName("error")
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.url.textChanged.connect(self._describe)
        self._describe()

    def _on_preset(self, index: int) -> None:
        if index > 0:
            _, url, model = PRESETS[index - 1]
            self.url.setText(url)
            self.model.setText(model)

    def _chosen(self) -> Endpoint:
        return Endpoint(self.url.text().strip(), self.model.text().strip(), self.timeout.value())

    def _describe(self, *_) -> None:
        endpoint = self._chosen()
        self.key.setPlaceholderText(
            "a key is stored in the system keyring; type to replace it" if secret_store.get(endpoint.key_name) else
            f"${api_chat.KEY_ENV} is used (${api_chat.KEY_HOST_ENV} names {endpoint.host}); type one to store it"
            if api_chat.env_key(endpoint.host) else "none needed for most local servers")
        self.where.setText("A server on this computer: conversations stay here." if endpoint.is_local() else
                           f"Conversations sent to this model leave this computer for {endpoint.host}; you are asked "
                           "before the first one.")

    def accept(self) -> None:
        endpoint = self._chosen()
        problem = endpoint.problem()
        if problem:
            self.problem.setText(problem)
            return
        if self.key.text().strip():
            where = api_chat.store_key(endpoint, self.key.text())
            if where != "keyring":
                warn(self, "API key", secret_store.fallback_warning("API key", where))
        self.endpoint = endpoint
        super().accept()
