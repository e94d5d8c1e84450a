"""The HCCP pre-ranking protocols (Zhao et al., WWW 2025): ``protocol`` (``hccp``: Tables 1 and 3 on a prepared
hybrid-sample dataset; ``variants`` its rows; ``report`` its tables and Fig. 7) and ``taobao`` (``hccp-taobao``:
Table 2 on the Taobao lists; ``taobao_report``), registered with :mod:`tfrec.experiments.core.registry`.
"""
